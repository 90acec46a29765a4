package main

import (
	"context"
	"encoding/json"
	"fmt"
	"iter"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/streamguard/streamguard"
	"github.com/streamguard/streamguard/gatewaytest"
	"github.com/streamguard/streamguard/resume/resumetest"
	"github.com/streamguard/streamguard/sse"
	gosse "github.com/tmaxmax/go-sse"
)

// The relay's shutdown: requests in flight get the drain (-drain), then
// the streams still running end as cut, their upstream work canceled, and
// only then is the store closed. These tests give the drain 1 s and the
// linger far more, so that a relay waiting out the linger (or leaving its
// work running) fails them.
const testDrain = time.Second

// holdingUpstream streams n chat chunks, then holds the request open, as a
// model thinking, until its caller cancels it (or a minute passes). active
// counts the requests it holds.
func holdingUpstream(t *testing.T, n int) (url string, active *atomic.Int32) {
	return thinkingUpstream(t, n, time.Minute)
}

// thinkingUpstream streams n chat chunks, thinks for think (or until its
// caller cancels), and then ends the stream with [DONE].
func thinkingUpstream(t *testing.T, n int, think time.Duration) (url string, active *atomic.Int32) {
	active = new(atomic.Int32)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		active.Add(1)
		defer active.Add(-1)
		w.Header().Set("Content-Type", "text/event-stream")
		for i := range n {
			fmt.Fprintf(w, "data: %s\n\n", gatewaytest.ChatChunk(i))
		}
		w.(http.Flusher).Flush()
		select {
		case <-r.Context().Done():
		case <-time.After(think):
			fmt.Fprint(w, "data: [DONE]\n\n")
		}
	}))
	t.Cleanup(up.Close)
	return up.URL, active
}

// settled waits up to 1 s for the upstream to see its calls canceled
// (its side learns of it when the connection closes), and returns how
// many it still holds.
func settled(active *atomic.Int32) int32 {
	for range 100 {
		if active.Load() == 0 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	return active.Load()
}

// startRelayStop runs the relay in this process and returns its address,
// its log, and a func that stops it as SIGTERM would (its context ends)
// and returns its exit code and how long it took to return, at most 30 s.
func startRelayStop(t *testing.T, args ...string) (string, *gatewaytest.SyncBuffer, func() (int, time.Duration)) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var out, errb gatewaytest.SyncBuffer
	done := make(chan int, 1)
	go func() { done <- relay(ctx, append([]string{"-listen", "127.0.0.1:0"}, args...), &out, &errb) }()
	stopped, code := false, -1
	stop := func() (int, time.Duration) {
		start := time.Now()
		if !stopped {
			stopped = true
			cancel()
			select {
			case code = <-done:
			case <-time.After(30 * time.Second):
				t.Fatalf("the relay did not return within 30 s of its stop\n%s", errb.String())
			}
		}
		return code, time.Since(start)
	}
	t.Cleanup(func() { stop() })
	for range 500 {
		if m := listening.FindStringSubmatch(out.String()); m != nil {
			return m[1], &errb, stop
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("the relay never said where it listens\n%s", errb.String())
	return "", nil, nil
}

// openStream starts a stream through the relay at addr, or resumes one
// after the event lastID, and returns the response and a pull of its
// events.
func openStream(t *testing.T, addr, lastID string) (*http.Response, func() (gosse.Event, error, bool)) {
	t.Helper()
	return openStreamWith(t, http.DefaultClient, addr, lastID)
}

// openStreamWith is openStream with client.
func openStreamWith(t *testing.T, client *http.Client, addr, lastID string) (*http.Response, func() (gosse.Event, error, bool)) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second) // a regression fails, not hangs
	t.Cleanup(cancel)
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+addr+"/v1/chat/completions", strings.NewReader(`{"stream":true}`))
	req.Header.Set("Authorization", "Bearer sk-test-shutdown")
	if lastID != "" {
		req.Header.Set(sse.LastEventIDHeader, lastID)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	pull, stop := iter.Pull2(gosse.Read(resp.Body, nil))
	t.Cleanup(stop)
	return resp, func() (gosse.Event, error, bool) { ev, err, ok := pull(); return ev, err, ok }
}

// handlersLeft waits up to 2 s for the relay's resumable handlers (and
// their linger watches) to be gone from this process, and names those
// left.
func handlersLeft() string {
	var left []string
	for range 20 {
		buf := make([]byte, 8<<20)
		left = left[:0]
		for _, g := range strings.Split(string(buf[:runtime.Stack(buf, true)]), "\n\n") {
			if strings.Contains(g, "middleware.serveResumable") || strings.Contains(g, "resumeWriter).linger") {
				left = append(left, strings.SplitN(g, "\n", 2)[0]+" (serveResumable or linger)")
			}
		}
		if len(left) == 0 {
			return ""
		}
		time.Sleep(100 * time.Millisecond)
	}
	return strings.Join(left, "\n")
}

// TestRelayShutdownClientGone: a stream whose client left holds no relay
// past its drain, its upstream call is canceled before the relay returns,
// and none of its goroutines outlives the relay.
func TestRelayShutdownClientGone(t *testing.T) {
	for _, h2c := range []bool{false, true} {
		t.Run(map[bool]string{false: "HTTP/1.1", true: "h2c"}[h2c], func(t *testing.T) {
			// Over HTTP/2 a handler outlives its connection: Shutdown
			// returns as the client leaves, the work lingering.
			tr := &http.Transport{Protocols: new(http.Protocols)}
			tr.Protocols.SetHTTP1(!h2c)
			tr.Protocols.SetUnencryptedHTTP2(h2c)
			defer tr.CloseIdleConnections()
			up, active := holdingUpstream(t, 3)
			addr, logs, stop := startRelayStop(t, "-upstream", up, "-linger", "20s", "-drain", testDrain.String())
			resp, next := openStreamWith(t, &http.Client{Transport: tr}, addr, "")
			if want := map[bool]int{false: 1, true: 2}[h2c]; resp.ProtoMajor != want {
				t.Fatalf("%s, want HTTP/%d", resp.Proto, want)
			}
			for i := range 3 {
				if _, err, ok := next(); !ok || err != nil {
					t.Fatalf("event %d: %v", i, err)
				}
			}
			resp.Body.Close() // the client leaves; the work lingers
			tr.CloseIdleConnections()
			time.Sleep(100 * time.Millisecond)
			code, took := stop()
			t.Logf("the relay returned %v after its stop, exit %d; upstream calls still held: %d", took.Round(time.Millisecond), code, settled(active))
			if code != 0 {
				t.Errorf("exit %d\n%s", code, logs.String())
			}
			if took < testDrain || took > testDrain+3*time.Second {
				t.Errorf("the relay took %v to return, want the drain (%v) and a moment", took, testDrain)
			}
			if n := active.Load(); n != 0 {
				t.Errorf("%d upstream calls still running after the relay returned", n)
			}
			if left := handlersLeft(); left != "" {
				t.Errorf("the relay returned, and its handlers run on:\n%s", left)
			}
		})
	}
}

// TestRelayRedisShutdownResumer: relay A shuts down while a stream it
// writes to the shared Redis is being resumed at relay B; the resume
// gets a truncated failure as soon as A's drain is over, not when A's
// beats have been missing for a linger.
func TestRelayRedisShutdownResumer(t *testing.T) {
	store := "redis://" + resumetest.RedisAddr(t) + "/0"
	up, active := holdingUpstream(t, 3)
	a, logsA, stopA := startRelayStop(t, "-upstream", up, "-store", store, "-linger", "3s", "-drain", testDrain.String())
	b, _, _ := startRelayStop(t, "-upstream", up, "-store", store, "-linger", "3s", "-drain", testDrain.String())
	first, next := openStream(t, a, "")
	var last string
	for i := range 3 {
		ev, err, ok := next()
		if !ok || err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
		last = ev.LastEventID
	}
	first.Body.Close()
	_, resumed := openStream(t, b, last) // the live tail, at B
	start := time.Now()
	code, took := stopA()
	t.Logf("relay A returned %v after its stop, exit %d", took.Round(time.Millisecond), code)
	ev, err, ok := resumed()
	waited := time.Since(start)
	t.Logf("the resume at B ended %v after A's stop: event %q %q, %v", waited.Round(time.Millisecond), ev.Type, ev.Data, err)
	if !ok || err != nil || ev.Type != "error" {
		t.Fatalf("the resume got %q %q, %v (more: %v), want a failure event", ev.Type, ev.Data, err, ok)
	}
	var f struct{ Source, Reason string }
	if err := json.Unmarshal([]byte(ev.Data), &f); err != nil || f.Source != string(streamguard.SourcePlatform) || f.Reason != string(streamguard.ReasonTruncated) {
		t.Errorf("the failure event %q (%v), want a truncated failure of the platform", ev.Data, err)
	}
	if strings.Contains(ev.Data, "no sign of life") || waited > testDrain+3*time.Second {
		t.Errorf("the resume waited %v for A's stream to end (%q), want the drain (%v) and a moment", waited, ev.Data, testDrain)
	}
	if _, _, ok := resumed(); ok {
		t.Errorf("the resume went on after its failure event")
	}
	if code != 0 || settled(active) != 0 {
		t.Errorf("relay A: exit %d, %d upstream calls still running\n%s", code, active.Load(), logsA.String())
	}
	if left := handlersLeft(); left != "" {
		t.Errorf("relay A returned, and its handlers run on:\n%s", left)
	}
}

// TestRelayShutdownMidStream: a stream that ends within the drain is
// relayed whole; one still running at its end ends, for its client still
// reading, with a truncated failure event right after the drain.
func TestRelayShutdownMidStream(t *testing.T) {
	for _, tc := range []struct {
		think time.Duration
		want  string // the last event's data
	}{{testDrain / 2, "[DONE]"}, {time.Minute, "truncated"}} {
		up, active := thinkingUpstream(t, 3, tc.think)
		addr, logs, stop := startRelayStop(t, "-upstream", up, "-linger", "20s", "-drain", testDrain.String())
		_, next := openStream(t, addr, "")
		for i := range 3 {
			if _, err, ok := next(); !ok || err != nil {
				t.Fatalf("event %d: %v", i, err)
			}
		}
		ended := make(chan gosse.Event, 1)
		go func() {
			var last gosse.Event
			for ev, err, ok := next(); ok && err == nil; ev, err, ok = next() {
				last = ev
			}
			ended <- last
		}()
		code, took := stop()
		var last gosse.Event
		select {
		case last = <-ended:
		case <-time.After(5 * time.Second):
			t.Fatalf("think %v: the stream never ended", tc.think)
		}
		t.Logf("think %v: the relay returned %v after its stop; the stream ended with %q %.60q", tc.think, took.Round(time.Millisecond), last.Type, last.Data)
		if !strings.Contains(last.Data, tc.want) || code != 0 || settled(active) != 0 || took > testDrain+3*time.Second {
			t.Errorf("think %v: the stream ended with %q %q, want %q; relay exit %d after %v, %d upstream calls left\n%s",
				tc.think, last.Type, last.Data, tc.want, code, took, active.Load(), logs.String())
		}
	}
}
