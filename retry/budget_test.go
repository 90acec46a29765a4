package retry_test

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
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

// gatewayReply is the scripted reply that stands for what the gateway
// answers under f, a fault answered before the model is called (Draining,
// Unreachable, RateLimited, Status): the status, headers and body the
// gatewaytest handler writes, without a socket, so that a test can run in a
// synctest bubble over a scriptedBase.
func gatewayReply(f gatewaytest.Fault) reply {
	g := gatewaytest.New(http.NotFoundHandler())
	defer g.Close()
	g.Script(f)
	w := httptest.NewRecorder()
	g.ServeHTTP(w, httptest.NewRequest("POST", "/predict", strings.NewReader("{}")))
	return reply{status: w.Code, header: w.Header(), body: w.Body.String()}
}

// Issue bullet: the request context's deadline bounds everything: never
// sleep past it, return the last response or error and never a bare
// context.DeadlineExceeded when a real failure happened; waits stop at once
// when the context is canceled.
//
// The subtests that measure time run in a synctest bubble over a
// scriptedBase: time is fake, so the durations are exact and cost nothing.
func TestBudget(t *testing.T) {
	const hop = 10 * time.Millisecond // an attempt's own duration, where it matters
	draining := func() reply { return gatewayReply(gatewaytest.Draining(0)) }

	t.Run("300 ms deadline with a 1 s backoff returns the 503 at once, before the deadline", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			base := &scriptedBase{script: slices.Repeat([]reply{draining()}, retry.DefaultMaxAttempts)}
			rt := retry.NewTransport(base, retry.Policy{Backoff: constant(time.Second)})
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, "POST", "http://gateway.test/predict", strings.NewReader("{}"))
			start := time.Now()
			resp, err := rt.RoundTrip(req)
			took := time.Since(start)
			if err != nil {
				t.Fatalf("err = %v, want the last 503", err)
			}
			defer resp.Body.Close()
			if took != 0 || ctx.Err() != nil {
				t.Errorf("returned after %v (context: %v), want at once: it waited for a retry that could not fit", took, ctx.Err())
			}
			if resp.StatusCode != 503 || base.calls() != 1 {
				t.Errorf("status %d after %d requests, want 503 after 1", resp.StatusCode, base.calls())
			}
			checkAttempts(t, resp, 1)
		})
	})

	t.Run("a retry that cannot start MinAttemptTime before the deadline is not made", func(t *testing.T) {
		// Each attempt takes 10 ms, the backoff is 60 ms, the deadline 120 ms.
		for _, c := range []struct {
			name     string
			min      time.Duration
			requests int
			took     time.Duration // RoundTrip's duration
		}{
			{"default 100 ms", 0, 1, hop},                                    // 10 ms + 60 ms + 100 ms > 120 ms
			{"none", -1, 2, 2*hop + 60*time.Millisecond},                     // 10 + 60 fits; 80 + 60 does not
			{"30 ms", 30 * time.Millisecond, 2, 2*hop + 60*time.Millisecond}, // 10 + 60 + 30 fits once
		} {
			t.Run(c.name, func(t *testing.T) {
				synctest.Test(t, func(t *testing.T) {
					d := draining()
					d.took = hop
					base := &scriptedBase{script: slices.Repeat([]reply{d}, retry.DefaultMaxAttempts)}
					rt := retry.NewTransport(base, retry.Policy{Backoff: constant(60 * time.Millisecond), MinAttemptTime: c.min})
					ctx, cancel := context.WithTimeout(context.Background(), 120*time.Millisecond)
					defer cancel()
					req, _ := http.NewRequestWithContext(ctx, "GET", "http://gateway.test/predict", nil)
					start := time.Now()
					resp, err := rt.RoundTrip(req)
					took := time.Since(start)
					if err != nil {
						t.Fatalf("err = %v, want the last 503", err)
					}
					defer resp.Body.Close()
					if ctx.Err() != nil {
						t.Error("returned after the deadline")
					}
					if resp.StatusCode != 503 || base.calls() != c.requests {
						t.Errorf("status %d after %d requests, want 503 after %d", resp.StatusCode, base.calls(), c.requests)
					}
					if took != c.took {
						t.Errorf("RoundTrip took %v, want %v", took, c.took)
					}
					if g := base.gaps(); len(g) > 0 && g[0] != hop+60*time.Millisecond {
						t.Errorf("the retry started %v after the first attempt, want %v", g[0], hop+60*time.Millisecond)
					}
				})
			})
		}
	})

	t.Run("cancel during the wait returns the last response at once", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			base := &scriptedBase{script: []reply{gatewayReply(gatewaytest.Unreachable())}}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			rt := retry.NewTransport(base, retry.Policy{
				Backoff: constant(time.Hour),
				OnRetry: func(retry.Attempt) { cancel() },
			})
			req, _ := http.NewRequestWithContext(ctx, "POST", "http://gateway.test/predict", strings.NewReader("{}"))
			start := time.Now()
			resp, err := rt.RoundTrip(req)
			took := time.Since(start)
			if err != nil {
				t.Fatalf("err = %v, want the 502", err)
			}
			if took != 0 || base.calls() != 1 {
				t.Errorf("returned after %v and %d attempts: the wait did not stop at the cancel", took, base.calls())
			}
			se := checkAttempts(t, resp, 1)
			if se.Reason != streamguard.ReasonUnreachable {
				t.Errorf("Check = %v", se)
			}
			if got := readAll(t, resp); !bytes.Contains(got, []byte(gatewaytest.MessageUnreachable)) {
				t.Errorf("body %q, want the 502's", got)
			}
		})
	})

	t.Run("cancel during the wait after a connection failure returns that failure", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			base := &scriptedBase{script: []reply{{err: dialRefused}}}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			rt := retry.NewTransport(base, retry.Policy{
				Backoff: constant(time.Hour),
				OnRetry: func(retry.Attempt) { cancel() },
			})
			req, _ := http.NewRequestWithContext(ctx, "GET", "http://gateway.test/", nil)
			start := time.Now()
			_, err := rt.RoundTrip(req)
			took := time.Since(start)
			se := asError(t, err)
			if se.Source != streamguard.SourceNetwork || se.Reason != streamguard.ReasonConnection || se.Attempts != 1 {
				t.Errorf("err = %v (%s %s, %d attempts), want the network failure", err, se.Source, se.Reason, se.Attempts)
			}
			if errors.Is(err, context.Canceled) {
				t.Errorf("err = %v wraps context.Canceled", err)
			}
			if took != 0 || base.calls() != 1 {
				t.Errorf("returned after %v and %d attempts: the wait did not stop at the cancel", took, base.calls())
			}
		})
	})

	t.Run("deadline during the next attempt returns the earlier 503, not the deadline", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			// The second attempt hangs, as a GatewayTimeout(time.Hour) does,
			// until the deadline ends it.
			base := &scriptedBase{script: []reply{draining(), {block: true}}}
			rt := retry.NewTransport(base, fast(retry.Policy{MinAttemptTime: -1}))
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, "POST", "http://gateway.test/predict", strings.NewReader("{}"))
			start := time.Now()
			resp, err := rt.RoundTrip(req)
			took := time.Since(start)
			if err != nil {
				t.Fatalf("err = %v, want the 503", err)
			}
			if took != 300*time.Millisecond || base.calls() != 2 {
				t.Errorf("returned after %v and %d attempts, want at the 300 ms deadline after 2", took, base.calls())
			}
			se := checkAttempts(t, resp, 2)
			if resp.StatusCode != 503 || se.Reason != streamguard.ReasonUnavailable {
				t.Errorf("got %d %v", resp.StatusCode, se)
			}
			if got := readAll(t, resp); !bytes.Contains(got, []byte(gatewaytest.MessageDraining)) {
				t.Errorf("body %q, want the 503's", got)
			}
		})
	})

	t.Run("deadline in the first attempt is the client's timeout", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			base := &scriptedBase{script: []reply{{block: true}}}
			rt := retry.NewTransport(base, fast(retry.Policy{}))
			ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, "GET", "http://gateway.test/predict", nil)
			start := time.Now()
			_, err := rt.RoundTrip(req)
			took := time.Since(start)
			se := asError(t, err)
			if se.Source != streamguard.SourceClient || se.Reason != streamguard.ReasonTimeout || se.Attempts != 1 || !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("err = %v (%s %s, %d attempts)", err, se.Source, se.Reason, se.Attempts)
			}
			if took != 50*time.Millisecond || base.calls() != 1 {
				t.Errorf("returned after %v and %d attempts, want at the 50 ms deadline after 1", took, base.calls())
			}
		})
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
		synctest.Test(t, func(t *testing.T) {
			base := &scriptedBase{script: []reply{{block: true}}}
			rt := retry.NewTransport(base, fast(retry.Policy{}))
			ctx, cancel := context.WithTimeoutCause(context.Background(), 50*time.Millisecond, streamguard.ErrBudgetExceeded)
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, "GET", "http://gateway.test/predict", nil)
			_, err := rt.RoundTrip(req)
			se := asError(t, err)
			if se.Source != streamguard.SourcePlatform || se.Reason != streamguard.ReasonTimeout || !errors.Is(err, streamguard.ErrBudgetExceeded) {
				t.Errorf("err = %v (%s %s)", err, se.Source, se.Reason)
			}
		})
	})

	t.Run("a waiting request ends at the deadline of http.Client.Timeout", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			base := &scriptedBase{script: slices.Repeat([]reply{draining()}, retry.DefaultMaxAttempts)}
			client := &http.Client{
				Transport: retry.NewTransport(base, retry.Policy{Backoff: constant(time.Second)}),
				Timeout:   300 * time.Millisecond,
			}
			start := time.Now()
			resp, err := client.Get("http://gateway.test/predict")
			took := time.Since(start)
			if err != nil {
				t.Fatal(err)
			}
			readAll(t, resp)
			if resp.StatusCode != 503 || took != 0 || base.calls() != 1 {
				t.Errorf("status %d after %v and %d attempts, want 503 at once after 1", resp.StatusCode, took, base.calls())
			}
		})
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
// HTTP-date replace the computed wait, capped by MaxRetryAfter, unless 0; a
// hint longer than the remaining budget ends retrying at once.
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
		// A hint of 0 is the schedule's wait, not an instant retry (a storm
		// when every answer says it).
		{"Retry-After as an HTTP-date in the past leaves the schedule", map[string]string{
			"Date": date.Format(http.TimeFormat), "Retry-After": date.Add(-time.Minute).Format(http.TimeFormat)}, 0, 0, time.Millisecond},
		{"Retry-After: 0 leaves the schedule", map[string]string{"Retry-After": "0"}, 0, 0, time.Millisecond},
		{"retry-after-ms: 0 leaves the schedule", map[string]string{"Retry-After-Ms": "0", "Retry-After": "0"}, 0, 0, time.Millisecond},
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
			synctest.Test(t, func(t *testing.T) {
				draining := reply{status: 503, header: http.Header{}, body: `{"error":"draining"}`}
				for k, v := range c.header {
					draining.header.Set(k, v)
				}
				base := &scriptedBase{script: []reply{draining}}
				timeout := c.timeout
				if timeout == 0 {
					timeout = testTimeout
				}
				ctx, cancel := context.WithTimeout(context.Background(), timeout)
				defer cancel()
				var rec recorder
				rt := retry.NewTransport(base, fast(retry.Policy{
					MaxRetryAfter: c.maxHint,
					// Record the wait, then cancel it: a hint is checked
					// without being waited for.
					OnRetry: func(a retry.Attempt) { rec.OnRetry(a); cancel() },
				}))
				req, _ := http.NewRequestWithContext(ctx, "GET", "http://gateway.test/predict", nil)
				start := time.Now()
				resp, err := rt.RoundTrip(req)
				took := time.Since(start)
				if err != nil {
					t.Fatal(err)
				}
				readAll(t, resp)
				if took != 0 {
					t.Errorf("took %v, want no time: the wait did not stop at the cancel", took)
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
				if n := base.calls(); n != 1 {
					t.Errorf("server hit %d times, want 1", n)
				}
			})
		})
	}

	t.Run("a Retry-After hint is waited for", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			// The gateway sends Retry-After: 1 and Retry-After-Ms: 40.
			base := &scriptedBase{script: []reply{gatewayReply(gatewaytest.Draining(40 * time.Millisecond))}}
			rt := retry.NewTransport(base, retry.Policy{Backoff: constant(time.Hour)})
			start := time.Now()
			resp := mustDo(t, rt, "GET", "http://gateway.test/predict")
			took := time.Since(start)
			readAll(t, resp)
			if resp.StatusCode != 200 || base.calls() != 2 || took != 40*time.Millisecond {
				t.Errorf("status %d after %d attempts and %v, want 200 after 2 and 40 ms", resp.StatusCode, base.calls(), took)
			}
			if g := base.gaps(); len(g) != 1 || g[0] != 40*time.Millisecond {
				t.Errorf("gaps between attempts %v, want [40ms]", g)
			}
		})
	})
}
