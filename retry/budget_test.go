package retry_test

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/streamguard/streamguard"
	"github.com/streamguard/streamguard/gatewaytest"
	"github.com/streamguard/streamguard/retry"
)

func constant(d time.Duration) func() backoff.BackOff {
	return func() backoff.BackOff { return backoff.NewConstantBackOff(d) }
}

func newPlainServer(t *testing.T, h http.Handler) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

func httpRequest(t *testing.T, method, url string, body *strings.Reader) *http.Request {
	t.Helper()
	var req *http.Request
	var err error
	if body == nil {
		req, err = http.NewRequest(method, url, nil)
	} else {
		req, err = http.NewRequest(method, url, body)
	}
	if err != nil {
		t.Fatal(err)
	}
	return req
}

// Issue bullet: the request context's deadline bounds everything: never
// sleep past it, return the last response or error and never a bare
// context.DeadlineExceeded when a real failure happened; waits stop at once
// when the context is canceled.
func TestBudget(t *testing.T) {
	t.Run("300 ms deadline with a 1 s backoff returns the 503 well before the deadline", func(t *testing.T) {
		gw := gatewaytest.NewServer(gatewaytest.JSON(200, `{}`))
		defer gw.Close()
		gw.Choose = func(int64, *http.Request) gatewaytest.Fault { return gatewaytest.Draining(0) }
		rt := retry.NewTransport(gw.Client().Transport, retry.Policy{Backoff: constant(time.Second)})

		start := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		deadline, _ := ctx.Deadline()
		req, _ := http.NewRequestWithContext(ctx, "POST", gw.URL+"/predict", strings.NewReader("{}"))
		resp, err := rt.RoundTrip(req)
		returned := time.Now()
		if err != nil {
			t.Fatalf("err = %v, want the last 503", err)
		}
		defer resp.Body.Close()
		if !returned.Before(deadline) || ctx.Err() != nil {
			t.Errorf("returned %v after the start, at or after the deadline", returned.Sub(start))
		}
		if elapsed := returned.Sub(start); elapsed > 250*time.Millisecond {
			t.Errorf("returned after %v: it waited for a retry that could not fit", elapsed)
		}
		if resp.StatusCode != 503 || gw.Requests() != 1 {
			t.Errorf("status %d after %d requests, want 503 after 1", resp.StatusCode, gw.Requests())
		}
		checkAttempts(t, resp, 1)
	})

	t.Run("a retry that cannot start MinAttemptTime before the deadline is not made", func(t *testing.T) {
		for _, c := range []struct {
			name     string
			min      time.Duration
			requests int64
		}{
			{"default 100 ms", 0, 1},            // 60 ms + 100 ms > 120 ms
			{"none", -1, 2},                     // 60 ms fits; 120 ms does not
			{"30 ms", 30 * time.Millisecond, 2}, // 60 ms + 30 ms fits once
		} {
			t.Run(c.name, func(t *testing.T) {
				gw := gatewaytest.NewServer(gatewaytest.JSON(200, `{}`))
				defer gw.Close()
				gw.Choose = func(int64, *http.Request) gatewaytest.Fault { return gatewaytest.Draining(0) }
				rt := retry.NewTransport(gw.Client().Transport, retry.Policy{Backoff: constant(60 * time.Millisecond), MinAttemptTime: c.min})
				ctx, cancel := context.WithTimeout(context.Background(), 120*time.Millisecond)
				defer cancel()
				req, _ := http.NewRequestWithContext(ctx, "GET", gw.URL+"/predict", nil)
				resp, err := rt.RoundTrip(req)
				if err != nil {
					t.Fatalf("err = %v, want the last 503", err)
				}
				defer resp.Body.Close()
				if ctx.Err() != nil {
					t.Error("returned after the deadline")
				}
				if resp.StatusCode != 503 || gw.Requests() != c.requests {
					t.Errorf("status %d after %d requests, want 503 after %d", resp.StatusCode, gw.Requests(), c.requests)
				}
			})
		}
	})

	t.Run("cancel during the wait returns the last response at once", func(t *testing.T) {
		gw := gatewaytest.NewServer(gatewaytest.JSON(200, `{}`))
		defer gw.Close()
		gw.Script(gatewaytest.Unreachable())
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		rt := retry.NewTransport(gw.Client().Transport, retry.Policy{
			Backoff: constant(time.Hour),
			OnRetry: func(retry.Attempt) { cancel() },
		})
		req, _ := http.NewRequestWithContext(ctx, "POST", gw.URL+"/predict", strings.NewReader("{}"))
		start := time.Now()
		resp, err := rt.RoundTrip(req)
		if err != nil {
			t.Fatalf("err = %v, want the 502", err)
		}
		if time.Since(start) > 5*time.Second {
			t.Errorf("the wait did not stop at the cancel")
		}
		se := checkAttempts(t, resp, 1)
		if se.Reason != streamguard.ReasonUnreachable {
			t.Errorf("Check = %v", se)
		}
		if got := readAll(t, resp); !bytes.Contains(got, []byte(gatewaytest.MessageUnreachable)) {
			t.Errorf("body %q, want the 502's", got)
		}
	})

	t.Run("cancel during the wait after a connection failure returns that failure", func(t *testing.T) {
		addr := closedAddr(t)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		rt := retry.NewTransport(plainTransport(t), retry.Policy{
			Backoff: constant(time.Hour),
			OnRetry: func(retry.Attempt) { cancel() },
		})
		req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+addr+"/", nil)
		_, err := rt.RoundTrip(req)
		se := asError(t, err)
		if se.Source != streamguard.SourceNetwork || se.Reason != streamguard.ReasonConnection || se.Attempts != 1 {
			t.Errorf("err = %v (%s %s, %d attempts), want the network failure", err, se.Source, se.Reason, se.Attempts)
		}
		if errors.Is(err, context.Canceled) {
			t.Errorf("err = %v wraps context.Canceled", err)
		}
	})

	t.Run("deadline during the next attempt returns the earlier 503, not the deadline", func(t *testing.T) {
		gw := gatewaytest.NewServer(gatewaytest.JSON(200, `{}`))
		defer gw.Close()
		gw.Script(gatewaytest.Draining(0), gatewaytest.GatewayTimeout(time.Hour))
		rt := retry.NewTransport(gw.Client().Transport, fast(retry.Policy{MinAttemptTime: -1}))
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, "POST", gw.URL+"/predict", strings.NewReader("{}"))
		resp, err := rt.RoundTrip(req)
		if err != nil {
			t.Fatalf("err = %v, want the 503", err)
		}
		se := checkAttempts(t, resp, 2)
		if resp.StatusCode != 503 || se.Reason != streamguard.ReasonUnavailable {
			t.Errorf("got %d %v", resp.StatusCode, se)
		}
		if got := readAll(t, resp); !bytes.Contains(got, []byte(gatewaytest.MessageDraining)) {
			t.Errorf("body %q, want the 503's", got)
		}
	})

	t.Run("deadline in the first attempt is the client's timeout", func(t *testing.T) {
		gw := gatewaytest.NewServer(gatewaytest.JSON(200, `{}`))
		defer gw.Close()
		gw.Script(gatewaytest.GatewayTimeout(time.Hour))
		rt := retry.NewTransport(gw.Client().Transport, fast(retry.Policy{}))
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, "GET", gw.URL+"/predict", nil)
		_, err := rt.RoundTrip(req)
		se := asError(t, err)
		if se.Source != streamguard.SourceClient || se.Reason != streamguard.ReasonTimeout || se.Attempts != 1 || !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("err = %v (%s %s, %d attempts)", err, se.Source, se.Reason, se.Attempts)
		}
	})

	t.Run("cancel in the first attempt is the client's cancellation", func(t *testing.T) {
		gw := gatewaytest.NewServer(gatewaytest.JSON(200, `{}`))
		defer gw.Close()
		gw.Script(gatewaytest.GatewayTimeout(time.Hour))
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		base := roundTripFunc(func(r *http.Request) (*http.Response, error) {
			cancel()
			return gw.Client().Transport.RoundTrip(r)
		})
		req, _ := http.NewRequestWithContext(ctx, "GET", gw.URL+"/predict", nil)
		_, err := retry.NewTransport(base, fast(retry.Policy{})).RoundTrip(req)
		se := asError(t, err)
		if se.Source != streamguard.SourceClient || se.Reason != streamguard.ReasonCanceled || !errors.Is(err, context.Canceled) {
			t.Errorf("err = %v (%s %s)", err, se.Source, se.Reason)
		}
	})

	t.Run("an expired request budget is the platform's timeout", func(t *testing.T) {
		gw := gatewaytest.NewServer(gatewaytest.JSON(200, `{}`))
		defer gw.Close()
		gw.Script(gatewaytest.GatewayTimeout(time.Hour))
		rt := retry.NewTransport(gw.Client().Transport, fast(retry.Policy{}))
		ctx, cancel := context.WithTimeoutCause(context.Background(), 50*time.Millisecond, streamguard.ErrBudgetExceeded)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, "GET", gw.URL+"/predict", nil)
		_, err := rt.RoundTrip(req)
		se := asError(t, err)
		if se.Source != streamguard.SourcePlatform || se.Reason != streamguard.ReasonTimeout || !errors.Is(err, streamguard.ErrBudgetExceeded) {
			t.Errorf("err = %v (%s %s)", err, se.Source, se.Reason)
		}
	})

	t.Run("a waiting request ends at the deadline of http.Client.Timeout", func(t *testing.T) {
		gw := gatewaytest.NewServer(gatewaytest.JSON(200, `{}`))
		defer gw.Close()
		gw.Choose = func(int64, *http.Request) gatewaytest.Fault { return gatewaytest.Draining(0) }
		client := &http.Client{
			Transport: retry.NewTransport(gw.Client().Transport, retry.Policy{Backoff: constant(time.Second)}),
			Timeout:   300 * time.Millisecond,
		}
		start := time.Now()
		resp, err := client.Get(gw.URL + "/predict")
		if err != nil {
			t.Fatal(err)
		}
		readAll(t, resp)
		if resp.StatusCode != 503 || time.Since(start) > 250*time.Millisecond {
			t.Errorf("status %d after %v", resp.StatusCode, time.Since(start))
		}
	})
}

// closedAddr returns a loopback address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// Issue bullet: server hints. retry-after-ms, Retry-After as seconds or an
// HTTP-date replace the computed wait, capped by MaxRetryAfter; a hint
// longer than the remaining budget ends retrying at once.
func TestRetryAfterHints(t *testing.T) {
	date := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	cases := []struct {
		name    string
		header  map[string]string
		maxHint time.Duration
		timeout time.Duration // the request's deadline; 0: testTimeout
		want    time.Duration // the wait OnRetry reports; -1: no retry
	}{
		{"Retry-After in seconds", map[string]string{"Retry-After": "7"}, 0, 0, 7 * time.Second},
		{"Retry-After as an HTTP-date, from the Date header", map[string]string{
			"Date": date.Format(http.TimeFormat), "Retry-After": date.Add(5 * time.Second).Format(http.TimeFormat)}, 0, 0, 5 * time.Second},
		{"Retry-After as an HTTP-date in the past", map[string]string{
			"Date": date.Format(http.TimeFormat), "Retry-After": date.Add(-time.Minute).Format(http.TimeFormat)}, 0, 0, 0},
		{"retry-after-ms", map[string]string{"Retry-After-Ms": "1500"}, 0, 0, 1500 * time.Millisecond},
		{"retry-after-ms is preferred to Retry-After", map[string]string{"Retry-After-Ms": "250", "Retry-After": "1"}, 0, 0, 250 * time.Millisecond},
		{"Retry-After is capped by MaxRetryAfter", map[string]string{"Retry-After": "120"}, 2 * time.Second, time.Hour, 2 * time.Second},
		{"Retry-After is capped at 30 s by default", map[string]string{"Retry-After": "86400"}, 0, 48 * time.Hour, 30 * time.Second},
		{"an HTTP-date hint is capped", map[string]string{
			"Date": date.Format(http.TimeFormat), "Retry-After": date.Add(time.Hour).Format(http.TimeFormat)}, 3 * time.Second, 2 * time.Hour, 3 * time.Second},
		{"a hint longer than the remaining budget ends retrying", map[string]string{"Retry-After": "5"}, 0, 2 * time.Second, -1},
		{"a capped hint still ends retrying when the server's is past the budget", map[string]string{"Retry-After": "120"}, time.Second, 5 * time.Second, -1},
		{"an invalid hint leaves the schedule", map[string]string{"Retry-After": "soon"}, 0, 0, time.Millisecond},
		{"a negative MaxRetryAfter ignores hints", map[string]string{"Retry-After": "7"}, -1, 0, time.Millisecond},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var hits atomic.Int32
			srv := newPlainServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				hits.Add(1)
				for k, v := range c.header {
					w.Header()[k] = []string{v}
				}
				w.WriteHeader(503)
				w.Write([]byte(`{"error":"draining"}`))
			}))
			timeout := c.timeout
			if timeout == 0 {
				timeout = testTimeout
			}
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			defer cancel()
			var rec recorder
			rt := retry.NewTransport(plainTransport(t), fast(retry.Policy{
				MaxRetryAfter: c.maxHint,
				// Record the wait, then cancel it: a hint is checked
				// without being waited for.
				OnRetry: func(a retry.Attempt) { rec.OnRetry(a); cancel() },
			}))
			req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL, nil)
			start := time.Now()
			resp, err := rt.RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			readAll(t, resp)
			if time.Since(start) > time.Second {
				t.Errorf("took %v", time.Since(start))
			}
			got := rec.all()
			switch {
			case c.want < 0 && len(got) != 0:
				t.Errorf("retried after %v, want no retry", got[0].Delay)
			case c.want >= 0 && len(got) != 1:
				t.Errorf("OnRetry called %d times, want 1", len(got))
			case c.want >= 0 && got[0].Delay != c.want:
				t.Errorf("wait %v, want %v", got[0].Delay, c.want)
			}
			if hits.Load() != 1 {
				t.Errorf("server hit %d times, want 1", hits.Load())
			}
		})
	}

	t.Run("a Retry-After hint is waited for", func(t *testing.T) {
		gw := gatewaytest.NewServer(gatewaytest.JSON(200, `{}`))
		defer gw.Close()
		gw.Script(gatewaytest.Draining(40 * time.Millisecond)) // sends Retry-After: 1 and Retry-After-Ms: 40
		rt := retry.NewTransport(gw.Client().Transport, retry.Policy{Backoff: constant(time.Hour)})
		start := time.Now()
		resp := mustDo(t, rt, "GET", gw.URL+"/predict")
		readAll(t, resp)
		if elapsed := time.Since(start); resp.StatusCode != 200 || elapsed < 40*time.Millisecond || elapsed > 900*time.Millisecond {
			t.Errorf("status %d after %v, want 200 after about 40 ms", resp.StatusCode, elapsed)
		}
	})
}
