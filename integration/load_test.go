package integration

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/streamguard/streamguard"
	"github.com/streamguard/streamguard/gatewaytest"
	"github.com/streamguard/streamguard/middleware"
	"github.com/streamguard/streamguard/retry"
	"github.com/streamguard/streamguard/sse"
	"go.uber.org/goleak"
)

// The load test's bounds. loadBound is the minute for the whole
// run; loadIdle is the guard's idle timeout that catches stalls, far above
// the gap between two events of a healthy stream even under -race on 2
// cores.
const (
	loadBound   = time.Minute
	loadIdle    = 2 * time.Second
	loadSeed    = 9
	streamIDKey = "X-Load-Stream"
)

// faultDeck deals the fault mix exactly: of every 100 requests, 10 get a
// 503, 5 a cut, 2 a stall, 1 an HTTP/2 reset, 82 pass, in a shuffled order.
// The first four requests get one fault of each kind, so that even the short
// run meets all of them.
type faultDeck struct {
	mu     sync.Mutex
	rng    *rand.Rand
	events int
	deck   []gatewaytest.Kind
	dealt  map[string][]gatewaytest.Fault // by stream: the fault of each attempt, in order
}

func newFaultDeck(events int) *faultDeck {
	return &faultDeck{rng: rand.New(rand.NewPCG(loadSeed, loadSeed)), events: events, dealt: map[string][]gatewaytest.Fault{},
		deck: []gatewaytest.Kind{gatewaytest.KindReset, gatewaytest.KindStall, gatewaytest.KindCut, gatewaytest.KindDraining}}
}

func (d *faultDeck) choose(_ int64, r *http.Request) gatewaytest.Fault {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.deck) == 0 {
		for _, share := range faultMix {
			for range share.per100 {
				d.deck = append(d.deck, share.kind)
			}
		}
		d.rng.Shuffle(len(d.deck), func(i, j int) { d.deck[i], d.deck[j] = d.deck[j], d.deck[i] })
	}
	kind := d.deck[0]
	d.deck = d.deck[1:]
	if kind == gatewaytest.KindDraining && r.Header.Get("Last-Event-ID") != "" {
		// A resume answered 503 ends its stream (the guard does not
		// retry a resume): the resumable run deals resumes stream
		// faults only.
		kind = gatewaytest.KindPass
	}
	var f gatewaytest.Fault
	switch after := d.rng.IntN(d.events); kind {
	case gatewaytest.KindDraining:
		f = gatewaytest.Draining(0)
	case gatewaytest.KindCut:
		f = gatewaytest.Cut(after)
	case gatewaytest.KindStall:
		f = gatewaytest.Stall(after)
	case gatewaytest.KindReset:
		f = gatewaytest.Reset(after)
	default:
		f = gatewaytest.Pass()
	}
	id := r.Header.Get(streamIDKey)
	d.dealt[id] = append(d.dealt[id], f)
	return f
}

// faultMix is the mix, per 100 requests.
var faultMix = []struct {
	kind   gatewaytest.Kind
	name   string
	per100 int
}{
	{gatewaytest.KindDraining, "503", 10},
	{gatewaytest.KindCut, "cut", 5},
	{gatewaytest.KindStall, "stall", 2},
	{gatewaytest.KindReset, "reset", 1},
	{gatewaytest.KindPass, "pass", 82},
}

func kindName(k gatewaytest.Kind) string {
	for _, share := range faultMix {
		if share.kind == k {
			return share.name
		}
	}
	return fmt.Sprint(k)
}

// expected is what a stream must end in when its last attempt met a fault
// of that kind: nil source for success.
var expected = map[gatewaytest.Kind]struct {
	source streamguard.Source
	reason streamguard.Reason
}{
	gatewaytest.KindPass:     {},
	gatewaytest.KindDraining: {streamguard.SourcePlatform, streamguard.ReasonUnavailable}, // retries spent or throttled
	gatewaytest.KindCut:      {streamguard.SourceNetwork, streamguard.ReasonTruncated},    // HTTP/2: the stream reset
	gatewaytest.KindStall:    {streamguard.SourcePlatform, streamguard.ReasonStalled},     // the guard's idle timeout
	gatewaytest.KindReset:    {streamguard.SourceNetwork, streamguard.ReasonTruncated},    // RST_STREAM INTERNAL_ERROR
}

// streamResult is how one stream of the load test ended.
type streamResult struct {
	id        string
	status    int
	err       *streamguard.Error // nil: success
	delivered []byte             // the body bytes the client read
	readErr   error              // a failure that is not a *streamguard.Error
}

// loadClient returns the full client stack against a TLS (HTTP/2)
// gatewaytest server, with a fast retry schedule and the shared throttle.
func loadClient(srv *gatewaytest.Server, throttle *retry.Throttle, retries *atomic.Int64) (*http.Client, *http.Transport) {
	base := middleware.DefaultBase(testTimeout)
	base.TLSClientConfig = srv.Client().Transport.(*http.Transport).TLSClientConfig.Clone()
	return middleware.NewClient(middleware.Config{
		Base:   base,
		Retry:  retry.Policy{Backoff: fastBackoff, Throttle: throttle, OnRetry: func(retry.Attempt) { retries.Add(1) }},
		Stream: sse.Config{IdleTimeout: loadIdle},
	}), base
}

// runStreams runs n concurrent streams through client and returns how each
// ended. It fails the test if they do not all end within loadBound.
func runStreams(t *testing.T, client *http.Client, url string, n int) []streamResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), loadBound)
	defer cancel()
	results := make([]streamResult, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			r := &results[i]
			r.id = strconv.Itoa(i)
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
			req.Header.Set(streamIDKey, r.id)
			resp, err := client.Do(req)
			if err != nil {
				r.classify(err)
				return
			}
			defer resp.Body.Close()
			r.status = resp.StatusCode
			if err := streamguard.Check(resp); err != nil {
				r.classify(err)
				return
			}
			r.delivered, err = io.ReadAll(resp.Body)
			if err != nil {
				r.classify(err)
			}
		})
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(loadBound + 10*time.Second):
		t.Fatalf("the streams did not end within %v", loadBound)
	}
	return results
}

func (r *streamResult) classify(err error) {
	if !errors.As(err, &r.err) {
		r.readErr = err
	}
}

// waitNoConns closes the client's idle connections and waits, for at most
// 5 s, until the server holds none: a connection still open then was leaked
// (a body never closed, a stream never ended). The close is repeated while
// it waits: connections dialled in the first burst of requests may finish
// their TLS handshake after the requests are done, and join the idle pool
// only then.
//
// While the stack does not forward CloseIdleConnections (see
// TestCloseIdleConnections), the base transport's pool is closed directly,
// so that the check still finds every connection a stream left behind.
func waitNoConns(t *testing.T, client *http.Client, base *http.Transport, srv *gatewaytest.Server) {
	t.Helper()
	forwards := stackClosesIdle(client)
	if !waitFor(5*time.Second, func() bool {
		client.CloseIdleConnections()
		if !forwards {
			base.CloseIdleConnections()
		}
		return srv.OpenConns() == 0
	}) {
		t.Errorf("%d connections still open at the server after CloseIdleConnections", srv.OpenConns())
	}
}

// TestLoadWithFaults runs 200 concurrent streams of 1,000 events (40 of 200
// under -short) through the whole client stack against a fault-injecting
// HTTP/2 gateway, and then the same number of requests against a gateway
// that answers every one 503.
func TestLoadWithFaults(t *testing.T) {
	streams, events := 200, 1000
	if testing.Short() {
		streams, events = 40, 200
	}
	leaks := goleak.IgnoreCurrent()

	t.Run("fault mix", func(t *testing.T) {
		srv := gatewaytest.NewTLSServer(gatewaytest.ChatStream(events))
		defer srv.Close()
		deck := newFaultDeck(events)
		srv.Choose = deck.choose
		var retries atomic.Int64
		throttle := retry.NewThrottle(10, 0.1)
		client, base := loadClient(srv, throttle, &retries)

		start := time.Now()
		results := runStreams(t, client, srv.URL+"/v1/chat/completions", streams)
		elapsed := time.Since(start)

		want := chatBody(events)
		byOutcome := map[string]int{}
		var delivered, deliveredEvents int64
		var retried int64
		deck.mu.Lock()
		defer deck.mu.Unlock()
		for _, r := range results {
			faults := deck.dealt[r.id]
			if len(faults) == 0 {
				t.Errorf("stream %s: the gateway never saw it (%v %v)", r.id, r.err, r.readErr)
				continue
			}
			retried += int64(len(faults) - 1)
			for _, f := range faults[:len(faults)-1] {
				if f.Kind() != gatewaytest.KindDraining {
					t.Errorf("stream %s: attempt after %v: only 503s may be retried", r.id, f)
				}
			}
			last := faults[len(faults)-1]
			exp := expected[last.Kind()]
			if r.readErr != nil {
				t.Errorf("stream %s (%v): %v is not a *streamguard.Error", r.id, last, r.readErr)
				continue
			}
			chunks, done, err := checkChunks(r.delivered)
			if err != nil {
				t.Errorf("stream %s (%v): %v", r.id, last, err)
			}
			delivered += int64(len(r.delivered))
			deliveredEvents += int64(chunks)
			if exp.source == "" {
				if r.err != nil || r.status != 200 || !bytes.Equal(r.delivered, want) {
					t.Errorf("stream %s (%v): status %d, %v, %d of %d bytes equal", r.id, last, r.status, r.err, len(r.delivered), len(want))
				}
				byOutcome["success"]++
				continue
			}
			if r.err == nil {
				t.Errorf("stream %s (%v): success, want %s/%s", r.id, last, exp.source, exp.reason)
				continue
			}
			if r.err.Source != exp.source || r.err.Reason != exp.reason {
				t.Errorf("stream %s (%v): %s/%s, want %s/%s: %v", r.id, last, r.err.Source, r.err.Reason, exp.source, exp.reason, r.err)
			}
			byOutcome[kindName(last.Kind())+"->"+string(r.err.Reason)]++
			switch last.Kind() {
			case gatewaytest.KindDraining:
				if r.err.Attempts != len(faults) {
					t.Errorf("stream %s: Attempts %d, the gateway saw %d", r.id, r.err.Attempts, len(faults))
				}
			default:
				// Exactly the events before the fault, each once, and
				// never [DONE].
				if chunks != last.After() || done || r.err.Events != int64(last.After()) {
					t.Errorf("stream %s (%v): %d chunks delivered, Events %d, [DONE] %v", r.id, last, chunks, r.err.Events, done)
				}
			}
		}
		if retried != retries.Load() {
			t.Errorf("the gateway saw %d retries, OnRetry %d", retried, retries.Load())
		}
		attempts := srv.Requests()
		waitNoConns(t, client, base, srv)
		t.Logf("fault mix: %d streams x %d events in %v: %d attempts (%d retries, throttle at %.1f tokens); outcomes %v; %d bytes, %d events delivered (%.0f events/s)",
			streams, events, elapsed.Round(time.Millisecond), attempts, retried, throttle.Tokens(), byOutcome,
			delivered, deliveredEvents, float64(deliveredEvents)/elapsed.Seconds())
	})

	t.Run("all 503: the throttle bounds the attempts", func(t *testing.T) {
		srv := gatewaytest.NewTLSServer(gatewaytest.ChatStream(events))
		defer srv.Close()
		srv.Choose = func(int64, *http.Request) gatewaytest.Fault { return gatewaytest.Draining(0) }
		var retries atomic.Int64
		throttle := retry.NewThrottle(10, 0.1)
		client, base := loadClient(srv, throttle, &retries)

		start := time.Now()
		results := runStreams(t, client, srv.URL+"/v1/chat/completions", streams)
		elapsed := time.Since(start)
		for _, r := range results {
			if r.err == nil || r.err.StatusCode != 503 || r.err.Reason != streamguard.ReasonUnavailable {
				t.Fatalf("stream %s: %v %v", r.id, r.err, r.readErr)
			}
		}
		attempts := srv.Requests()
		bound := float64(streams) * 1.2
		t.Logf("all 503: %d requests made %d attempts (%.2fx; bound 1.2x = %.0f; without the throttle up to %d) in %v; throttle at %.1f tokens",
			streams, attempts, float64(attempts)/float64(streams), bound, streams*retry.DefaultMaxAttempts,
			elapsed.Round(time.Millisecond), throttle.Tokens())
		if float64(attempts) >= bound {
			t.Errorf("%d attempts for %d requests: the throttle let more than 1.2x through", attempts, streams)
		}
		waitNoConns(t, client, base, srv)
	})

	goleak.VerifyNone(t, leaks)
}
