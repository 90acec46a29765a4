package retry_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/streamguard/streamguard"
	"github.com/streamguard/streamguard/gatewaytest"
	"github.com/streamguard/streamguard/internal/ctxkey"
	"github.com/streamguard/streamguard/retry"
)

// modelError is a model server that raises its own error: status with the
// headers a Truss model server sets on an exception in the model's code.
func modelError(status int) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Baseten-Error-Source", "04")
		w.Header().Set("X-Baseten-Error-Code", "600")
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		io.WriteString(w, `{"error":"Internal Server Error (in model/chainlet)."}`)
	})
}

// Issue bullet: retries 502 and 503 by default, and 429 with a server hint;
// Statuses replaces the set; never a 502 "client closed connection" nor a
// status Classify marks not retryable unless the caller listed it.
func TestStatuses(t *testing.T) {
	const maxAttempts = 3
	ok := gatewaytest.JSON(200, `{"ok":true}`)
	cases := []struct {
		name     string
		model    http.Handler // nil: ok
		statuses []int
		faults   []gatewaytest.Fault
		requests int64 // requests the gateway sees
		status   int   // final status
	}{
		{"502 unreachable is retried", nil, nil,
			[]gatewaytest.Fault{gatewaytest.Unreachable(), gatewaytest.Unreachable()}, 3, 200},
		{"503 draining is retried", nil, nil,
			[]gatewaytest.Fault{gatewaytest.Draining(0)}, 2, 200},
		{"proxy HTML 502 is retried", nil, nil,
			[]gatewaytest.Fault{gatewaytest.Status(502, "<html><title>502 Bad Gateway</title></html>")}, 2, 200},
		{"retries are spent on 503", nil, nil,
			[]gatewaytest.Fault{gatewaytest.Draining(0), gatewaytest.Draining(0), gatewaytest.Draining(0), gatewaytest.Draining(0)}, 3, 503},
		{"502 client closed connection is not retried", nil, nil,
			[]gatewaytest.Fault{gatewaytest.ClientClosed()}, 1, 502},
		{"502 client closed connection is not retried even when listed", nil, []int{502, 503},
			[]gatewaytest.Fault{gatewaytest.ClientClosed()}, 1, 502},
		{"499 is not retried even when listed", nil, []int{499},
			[]gatewaytest.Fault{gatewaytest.Status(499, `{"error":"client closed request"}`)}, 1, 499},
		{"504 is not retried by default", nil, nil,
			[]gatewaytest.Fault{gatewaytest.GatewayTimeout(0)}, 1, 504},
		{"504 is retried when listed", nil, []int{502, 503, 504},
			[]gatewaytest.Fault{gatewaytest.GatewayTimeout(0)}, 2, 200},
		{"500 is not retried by default", nil, nil,
			[]gatewaytest.Fault{gatewaytest.Status(500, `{"error":"boom"}`)}, 1, 500},
		{"500 is retried when listed", nil, []int{429, 500, 502, 503, 504},
			[]gatewaytest.Fault{gatewaytest.Status(500, `{"error":"boom"}`)}, 2, 200},
		{"429 without a hint is not retried by default", nil, nil,
			[]gatewaytest.Fault{gatewaytest.RateLimited(0)}, 1, 429},
		{"429 with a hint is retried by default", nil, nil,
			[]gatewaytest.Fault{gatewaytest.RateLimited(time.Millisecond)}, 2, 200},
		{"429 with a hint is not retried when the list leaves it out", nil, []int{502, 503},
			[]gatewaytest.Fault{gatewaytest.RateLimited(time.Millisecond)}, 1, 429},
		{"429 is retried when listed", nil, []int{429},
			[]gatewaytest.Fault{gatewaytest.RateLimited(0)}, 2, 200},
		{"503 raised by the model's code is not retried by default", modelError(503), nil, nil, 1, 503},
		{"503 raised by the model's code is retried when listed", modelError(503), []int{503}, nil, maxAttempts, 503},
		{"404 is never retried", nil, nil,
			[]gatewaytest.Fault{gatewaytest.Status(404, `{"error":"model not found"}`)}, 1, 404},
		{"an empty status list retries no status", nil, []int{},
			[]gatewaytest.Fault{gatewaytest.Draining(0)}, 1, 503},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			model := c.model
			if model == nil {
				model = ok
			}
			gw := gatewaytest.NewServer(model)
			defer gw.Close()
			gw.Script(c.faults...)
			rt := retry.NewTransport(gw.Client().Transport, fast(retry.Policy{Statuses: c.statuses, MaxAttempts: maxAttempts}))
			resp, err := do(t, rt, "POST", gw.URL+"/production/predict", strings.NewReader(`{"prompt":"hi"}`))
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != c.status {
				t.Errorf("status %d, want %d", resp.StatusCode, c.status)
			}
			if got := gw.Requests(); got != c.requests {
				t.Errorf("gateway saw %d requests, want %d", got, c.requests)
			}
			if c.status >= 400 {
				checkAttempts(t, resp, int(c.requests))
			}
			readAll(t, resp)
		})
	}
}

// Issue bullet: when retries are spent on a status, the last response is
// returned with err == nil and its body intact; Check classifies it with
// Attempts set.
func TestSpentRetriesReturnTheLastResponse(t *testing.T) {
	big := `{"error":"` + strings.Repeat("x", 100<<10) + `"}` // past the 64 KiB read to classify it
	cases := []struct {
		name string
		body string
	}{
		{"small body", `{"error":"Error making prediction"}`},
		{"body over 64 KiB", big},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			gw := gatewaytest.NewServer(gatewaytest.JSON(200, `{}`))
			defer gw.Close()
			gw.Script(gatewaytest.Status(502, `{"error":"first"}`), gatewaytest.Status(502, `{"error":"second"}`), gatewaytest.Status(502, c.body))
			rt := retry.NewTransport(gw.Client().Transport, fast(retry.Policy{MaxAttempts: 3}))
			resp, err := do(t, rt, "POST", gw.URL+"/predict", strings.NewReader("{}"))
			if err != nil {
				t.Fatal(err)
			}
			se := checkAttempts(t, resp, 3)
			if se.StatusCode != 502 || se.Source != streamguard.SourcePlatform {
				t.Errorf("Check = %v", se)
			}
			if got := readAll(t, resp); string(got) != c.body {
				t.Errorf("body is %d bytes, want the last response's %d", len(got), len(c.body))
			}
		})
	}
}

// The throttle does not change what a spent request returns: its body is
// still intact after being read to classify it.
func TestSpentRetriesWithThrottleKeepTheBody(t *testing.T) {
	gw := gatewaytest.NewServer(gatewaytest.JSON(200, `{}`))
	defer gw.Close()
	gw.Script(gatewaytest.Draining(0))
	rt := retry.NewTransport(gw.Client().Transport, fast(retry.Policy{MaxAttempts: 1, Throttle: retry.NewThrottle(10, 1)}))
	resp, err := do(t, rt, "GET", gw.URL+"/predict", nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, resp); !bytes.Contains(got, []byte(gatewaytest.MessageDraining)) {
		t.Errorf("body %q", got)
	}
}

// Issue bullet: OnRetry before each wait; each attempt's context carries
// its number for Check and the tracing package.
func TestAttemptNumbers(t *testing.T) {
	gw := gatewaytest.NewServer(gatewaytest.JSON(200, `{"ok":true}`))
	defer gw.Close()
	gw.Script(gatewaytest.Draining(0), gatewaytest.Unreachable())

	var mu sync.Mutex
	var seen []int
	base := roundTripFunc(func(r *http.Request) (*http.Response, error) {
		mu.Lock()
		seen = append(seen, ctxkey.Attempt(r.Context()))
		mu.Unlock()
		return gw.Client().Transport.RoundTrip(r)
	})
	var rec recorder
	rt := retry.NewTransport(base, fast(retry.Policy{OnRetry: rec.OnRetry}))
	resp, err := do(t, rt, "POST", gw.URL+"/predict", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	readAll(t, resp)
	if fmt.Sprint(seen) != "[1 2 3]" {
		t.Errorf("attempt numbers in the contexts: %v, want [1 2 3]", seen)
	}
	if got := ctxkey.Attempt(resp.Request.Context()); got != 3 {
		t.Errorf("resp.Request attempt %d, want 3", got)
	}
	got := rec.all()
	if len(got) != 2 {
		t.Fatalf("OnRetry called %d times, want 2", len(got))
	}
	for i, want := range []struct {
		n, status int
		reason    streamguard.Reason
	}{{1, 503, streamguard.ReasonUnavailable}, {2, 502, streamguard.ReasonUnreachable}} {
		a := got[i]
		se := asError(t, a.Err)
		if a.N != want.n || a.StatusCode != want.status || se.Reason != want.reason || se.Attempts != want.n || a.Delay != time.Millisecond {
			t.Errorf("OnRetry #%d: %+v (%v), want N=%d status=%d %s delay 1ms", i+1, a, se, want.n, want.status, want.reason)
		}
	}
}

// Issue bullet: one BackOff per logical request, made only when a retry is
// needed, and a schedule's Stop ends the retries.
func TestBackoffSchedule(t *testing.T) {
	t.Run("made once per request and only on retry", func(t *testing.T) {
		gw := gatewaytest.NewServer(gatewaytest.JSON(200, `{}`))
		defer gw.Close()
		var mu sync.Mutex
		made := 0
		rt := retry.NewTransport(gw.Client().Transport, retry.Policy{Backoff: func() backoff.BackOff {
			mu.Lock()
			made++
			mu.Unlock()
			return tiny()
		}})
		readAll(t, mustDo(t, rt, "GET", gw.URL+"/ok"))
		if made != 0 {
			t.Errorf("Backoff called %d times for a success", made)
		}
		gw.Script(gatewaytest.Draining(0), gatewaytest.Draining(0), gatewaytest.Draining(0))
		readAll(t, mustDo(t, rt, "GET", gw.URL+"/retried"))
		if made != 1 {
			t.Errorf("Backoff called %d times for one request with 3 retries, want 1", made)
		}
	})
	t.Run("Stop ends the retries", func(t *testing.T) {
		gw := gatewaytest.NewServer(gatewaytest.JSON(200, `{}`))
		defer gw.Close()
		gw.Script(gatewaytest.Draining(0), gatewaytest.Draining(0), gatewaytest.Draining(0))
		rt := retry.NewTransport(gw.Client().Transport, retry.Policy{Backoff: func() backoff.BackOff {
			return backoff.WithMaxRetries(tiny(), 1)
		}})
		resp := mustDo(t, rt, "GET", gw.URL+"/")
		if resp.StatusCode != 503 || gw.Requests() != 2 {
			t.Errorf("status %d after %d requests, want 503 after 2", resp.StatusCode, gw.Requests())
		}
	})
	t.Run("the default schedule", func(t *testing.T) {
		bo := retry.DefaultBackoff()
		for i, base := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 16 * time.Second, 30 * time.Second, 30 * time.Second} {
			d := bo.NextBackOff()
			if d < base/2 || d > base*3/2 {
				t.Errorf("wait %d = %v, want %v ±50%%", i+1, d, base)
			}
		}
	})
}

func mustDo(t *testing.T, rt http.RoundTripper, method, url string) *http.Response {
	t.Helper()
	resp, err := do(t, rt, method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// Issue bullet: a 2xx is returned as soon as its headers arrive; retry
// never replays once body bytes were handed to the caller.
func TestStreams(t *testing.T) {
	t.Run("a streaming 2xx is returned as soon as its headers arrive", func(t *testing.T) {
		release := make(chan struct{})
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/event-stream")
			w.WriteHeader(200)
			http.NewResponseController(w).Flush()
			select {
			case <-release:
			case <-r.Context().Done():
			case <-time.After(testTimeout):
			}
			io.WriteString(w, "data: [DONE]\n\n")
		})
		for _, proto := range []string{"HTTP/1.1", "HTTP/2.0"} {
			t.Run(proto, func(t *testing.T) {
				var base http.RoundTripper
				var url string
				if proto == "HTTP/2.0" {
					srv, tr := h2Server(t, h)
					base, url = tr, srv.URL
				} else {
					srv := newPlainServer(t, h)
					base, url = plainTransport(t), srv.URL
				}
				rt := retry.NewTransport(base, fast(retry.Policy{}))
				resp, err := do(t, rt, "POST", url, strings.NewReader("{}"))
				if err != nil {
					t.Fatal(err)
				}
				if resp.StatusCode != 200 || resp.Proto != proto {
					t.Fatalf("%s %d, want %s 200", resp.Proto, resp.StatusCode, proto)
				}
				// The handler is still holding its body back: RoundTrip
				// returned on the headers alone.
				release <- struct{}{}
				if got := readAll(t, resp); string(got) != "data: [DONE]\n\n" {
					t.Errorf("body %q", got)
				}
			})
		}
	})
	faults := []struct {
		name  string
		tls   bool
		fault gatewaytest.Fault
	}{
		{"a stream cut after its 200 is not replayed", false, gatewaytest.Cut(2)},
		{"an HTTP/2 stream reset after its 200 is not replayed", true, gatewaytest.Reset(2)},
	}
	for _, c := range faults {
		t.Run(c.name, func(t *testing.T) {
			newServer := gatewaytest.NewServer
			if c.tls {
				newServer = gatewaytest.NewTLSServer
			}
			gw := newServer(gatewaytest.ChatStream(10))
			defer gw.Close()
			gw.Script(c.fault)
			rt := retry.NewTransport(gw.Client().Transport, fast(retry.Policy{}))
			resp, err := do(t, rt, "POST", gw.URL+"/v1/chat/completions", strings.NewReader("{}"))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := io.ReadAll(resp.Body); err == nil {
				t.Error("reading the faulted stream succeeded")
			}
			resp.Body.Close()
			if gw.Requests() != 1 {
				t.Errorf("gateway saw %d requests, want 1", gw.Requests())
			}
		})
	}
}

// The RoundTripper is safe for concurrent use: many requests through one
// transport, with faults, under -race.
func TestConcurrentUse(t *testing.T) {
	gw := gatewaytest.NewServer(gatewaytest.Echo())
	defer gw.Close()
	// The first two attempts of every request fail, 503 then 502, whatever
	// the interleaving.
	var mu sync.Mutex
	seen := map[string]int{}
	gw.Choose = func(n int64, r *http.Request) gatewaytest.Fault {
		mu.Lock()
		defer mu.Unlock()
		id := r.Header.Get("X-Test-Id")
		seen[id]++
		switch seen[id] {
		case 1:
			return gatewaytest.Draining(0)
		case 2:
			return gatewaytest.Unreachable()
		}
		return gatewaytest.Pass()
	}
	var rec recorder
	rt := retry.NewTransport(gw.Client().Transport, fast(retry.Policy{OnRetry: rec.OnRetry, Throttle: retry.NewThrottle(1000, 1)}))
	const workers, each = 8, 10
	var wg sync.WaitGroup
	errs := make(chan error, workers*each)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				body := fmt.Sprintf(`{"worker":%d,"i":%d}`, w, i)
				ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
				req, _ := http.NewRequestWithContext(ctx, "POST", gw.URL+"/predict", strings.NewReader(body))
				req.Header.Set("X-Test-Id", body)
				resp, err := rt.RoundTrip(req)
				if err != nil {
					errs <- err
					cancel()
					continue
				}
				got, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				cancel()
				if err != nil || resp.StatusCode != 200 || string(got) != body {
					errs <- fmt.Errorf("%d %q %v, want 200 %q", resp.StatusCode, got, err, body)
				}
				if a := ctxkey.Attempt(resp.Request.Context()); a != 3 {
					errs <- fmt.Errorf("%s: attempt %d, want 3", body, a)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := len(rec.all()); n != 2*workers*each {
		t.Errorf("%d retries, want %d", n, 2*workers*each)
	}
}

// NewTransport with a nil base uses http.DefaultTransport, and
// CloseIdleConnections reaches the base.
func TestTransportPlumbing(t *testing.T) {
	t.Run("nil base is http.DefaultTransport", func(t *testing.T) {
		srv := newPlainServer(t, gatewaytest.JSON(200, `{}`))
		rt := retry.NewTransport(nil, retry.Policy{})
		readAll(t, mustDo(t, rt, "GET", srv.URL))
		http.DefaultTransport.(*http.Transport).CloseIdleConnections()
	})
	t.Run("CloseIdleConnections is forwarded", func(t *testing.T) {
		closed := false
		base := &idleCloser{RoundTripper: plainTransport(t), closed: &closed}
		client := &http.Client{Transport: retry.NewTransport(base, retry.Policy{})}
		client.CloseIdleConnections()
		if !closed {
			t.Error("base.CloseIdleConnections was not called")
		}
	})
	t.Run("a broken base returning a response and an error", func(t *testing.T) {
		body := &countingBody{Reader: strings.NewReader("x")}
		boom := errors.New("boom")
		base := roundTripFunc(func(r *http.Request) (*http.Response, error) {
			return &http.Response{StatusCode: 200, Body: body, Request: r}, boom
		})
		resp, err := retry.NewTransport(base, retry.Policy{}).RoundTrip(httpRequest(t, "GET", "http://example.invalid/", nil))
		if resp != nil || !errors.Is(err, boom) || body.closes.Load() != 1 {
			t.Errorf("got %v, %v, body closed %d times", resp, err, body.closes.Load())
		}
	})
}

type idleCloser struct {
	http.RoundTripper
	closed *bool
}

func (c *idleCloser) CloseIdleConnections() { *c.closed = true }
