package integration

import (
	"bytes"
	"net/http"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/streamguard/streamguard"
	"github.com/streamguard/streamguard/gatewaytest"
	"github.com/streamguard/streamguard/retry"
	gosse "github.com/tmaxmax/go-sse"
	"go.uber.org/goleak"
)

// TestLoadResumable runs the load test's fault mix (503s, cuts, stalls,
// resets) over 200 concurrent streams of 1,000 events (40 of 200 under
// -short) whose server honours Last-Event-ID: every stream the retries got
// a 200 for completes, its cuts resumed by the guard, with no event lost,
// duplicated or reordered.
func TestLoadResumable(t *testing.T) {
	streams, events := 200, 1000
	if testing.Short() {
		streams, events = 40, 200
	}
	leaks := goleak.IgnoreCurrent()
	srv := gatewaytest.NewTLSServer(gatewaytest.IDStream(events))
	deck := newFaultDeck(events)
	var resumes atomic.Int64
	srv.Choose = func(n int64, r *http.Request) gatewaytest.Fault {
		if r.Header.Get("Last-Event-ID") != "" {
			resumes.Add(1)
		}
		return deck.choose(n, r)
	}
	var retries atomic.Int64
	throttle := retry.NewThrottle(10, 0.1)
	client, base := loadClient(srv, throttle, &retries)

	start := time.Now()
	results := runStreams(t, client, srv.URL+"/v1/events", streams)
	elapsed := time.Since(start)

	want := []byte(idStreamBody(events))
	var lost, dup, reordered, completed, failed503 int
	var streamFaults int
	deck.mu.Lock()
	for _, r := range results {
		faults := deck.dealt[r.id]
		for _, f := range faults {
			if k := f.Kind(); k == gatewaytest.KindCut || k == gatewaytest.KindStall || k == gatewaytest.KindReset {
				streamFaults++
			}
		}
		if r.err != nil || r.readErr != nil {
			if r.err != nil && r.err.Reason == streamguard.ReasonUnavailable && len(faults) > 0 &&
				faults[len(faults)-1].Kind() == gatewaytest.KindDraining {
				failed503++ // the retries were spent on 503s: no stream began
				continue
			}
			t.Errorf("stream %s (faults %v): %v %v", r.id, faults, r.err, r.readErr)
		}
		l, d, o := idAudit(t, r.delivered, events)
		lost, dup, reordered = lost+l, dup+d, reordered+o
		if bytes.Equal(r.delivered, want) {
			completed++
		} else if r.err == nil {
			t.Errorf("stream %s (faults %v): delivered %d bytes that differ from the uncut stream's %d", r.id, faults, len(r.delivered), len(want))
		}
	}
	deck.mu.Unlock()
	if lost+dup+reordered != 0 {
		t.Errorf("%d events lost, %d duplicated, %d reordered", lost, dup, reordered)
	}
	attempts := srv.Requests()
	waitNoConns(t, client, base, srv)
	srv.Close()
	t.Logf("resumable fault mix: %d streams x %d events in %v: %d requests (%d retries, %d resumes after %d stream faults); %d complete, %d failed on 503s before their stream began; %d lost, %d duplicated, %d reordered",
		streams, events, elapsed.Round(time.Millisecond), attempts, retries.Load(), resumes.Load(), streamFaults,
		completed, failed503, lost, dup, reordered)
	if completed+failed503 != streams {
		t.Errorf("%d of %d streams complete", completed, streams-failed503)
	}
	goleak.VerifyNone(t, leaks)
}

// idAudit reads the events a stream delivered and counts the ids of 1..n+1
// that are missing, delivered more than once, or delivered out of order.
func idAudit(t *testing.T, delivered []byte, n int) (lost, dup, reordered int) {
	t.Helper()
	seen := make([]int, n+2)
	last := 0
	for ev, err := range gosse.Read(bytes.NewReader(delivered), &gosse.ReadConfig{MaxEventSize: 1 << 20}) {
		if err != nil {
			t.Errorf("reading the delivered events: %v", err)
			break
		}
		id, err := strconv.Atoi(ev.LastEventID)
		if err != nil || id < 1 || id > n+1 {
			t.Errorf("event with id %q", ev.LastEventID)
			continue
		}
		if seen[id]++; seen[id] > 1 {
			dup++
		}
		if id < last {
			reordered++
		}
		last = id
	}
	for id := 1; id <= last; id++ {
		if seen[id] == 0 {
			lost++
		}
	}
	return lost, dup, reordered
}
