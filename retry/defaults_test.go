package retry_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/streamguard/streamguard"
	"github.com/streamguard/streamguard/internal/ctxkey"
	"github.com/streamguard/streamguard/retry"
)

// The tests in this file run in a synctest bubble over in-memory round
// trips: time is fake, so that waits of seconds cost no test time and are
// measured exactly.

// reply is one scripted answer of a scriptedBase: a response, or err.
type reply struct {
	status int
	header http.Header
	body   string
	err    error
	took   time.Duration // the attempt's own duration, in the bubble's time
	block  bool          // the attempt waits for its context to end
}

// scriptedBase is a RoundTripper that answers from a script, then 200 {},
// and records when each attempt started and the context it carried.
type scriptedBase struct {
	mu     sync.Mutex
	script []reply
	starts []time.Time
	ctxs   []context.Context
}

func (b *scriptedBase) RoundTrip(r *http.Request) (*http.Response, error) {
	b.mu.Lock()
	b.starts = append(b.starts, time.Now())
	b.ctxs = append(b.ctxs, r.Context())
	rep := reply{status: 200, body: `{}`}
	if len(b.script) > 0 {
		rep, b.script = b.script[0], b.script[1:]
	}
	b.mu.Unlock()
	if r.Body != nil {
		r.Body.Close()
	}
	if rep.block {
		<-r.Context().Done()
		return nil, r.Context().Err()
	}
	time.Sleep(rep.took)
	if rep.err != nil {
		return nil, rep.err
	}
	h := rep.header.Clone()
	if h == nil {
		h = http.Header{}
	}
	h.Set("Content-Type", "application/json")
	return &http.Response{
		Status:        strconv.Itoa(rep.status) + " " + http.StatusText(rep.status),
		StatusCode:    rep.status,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        h,
		Body:          io.NopCloser(strings.NewReader(rep.body)),
		ContentLength: int64(len(rep.body)),
		Request:       r,
	}, nil
}

// calls returns how many attempts were made.
func (b *scriptedBase) calls() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.starts)
}

// gaps returns the time between the starts of consecutive attempts.
func (b *scriptedBase) gaps() []time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	var d []time.Duration
	for i := 1; i < len(b.starts); i++ {
		d = append(d, b.starts[i].Sub(b.starts[i-1]))
	}
	return d
}

func header(kv ...string) http.Header {
	h := http.Header{}
	for i := 0; i+1 < len(kv); i += 2 {
		h.Set(kv[i], kv[i+1])
	}
	return h
}

const rateLimitedBody = `{"error":"rate limited"}`

// A nil Policy.Statuses retries 429 when the server says when: the wait is
// its hint, capped by MaxRetryAfter; without a hint, or with one past the
// deadline, the 429 is returned at once.
func TestDefault429(t *testing.T) {
	type check struct {
		calls  int           // attempts made
		status int           // the final status
		wait   time.Duration // the wait before the retry, when calls > 1
		took   time.Duration // RoundTrip's duration in the bubble's time
		policy func(*retry.Policy)
	}
	cases := []struct {
		name    string
		first   func() reply // the first answer; then 200
		timeout time.Duration
		want    check
	}{
		{"429 with Retry-After in seconds is retried after it, then succeeds",
			func() reply { return reply{status: 429, header: header("Retry-After", "2"), body: rateLimitedBody} },
			time.Minute, check{calls: 2, status: 200, wait: 2 * time.Second, took: 2 * time.Second}},
		{"429 with retry-after-ms is retried after it",
			func() reply {
				return reply{status: 429, header: header("Retry-After-Ms", "250"), body: rateLimitedBody}
			},
			time.Minute, check{calls: 2, status: 200, wait: 250 * time.Millisecond, took: 250 * time.Millisecond}},
		{"429 with Retry-After as an HTTP-date is retried at that date",
			func() reply {
				now := time.Now() // the bubble's, on a whole second
				return reply{status: 429, body: rateLimitedBody, header: header(
					"Date", now.UTC().Format(http.TimeFormat),
					"Retry-After", now.Add(3*time.Second).UTC().Format(http.TimeFormat))}
			},
			time.Minute, check{calls: 2, status: 200, wait: 3 * time.Second, took: 3 * time.Second}},
		{"a 429 hint is capped by MaxRetryAfter",
			func() reply { return reply{status: 429, header: header("Retry-After", "120"), body: rateLimitedBody} },
			time.Hour, check{calls: 2, status: 200, wait: retry.DefaultMaxRetryAfter, took: retry.DefaultMaxRetryAfter}},
		{"429 without a hint is returned at once",
			func() reply { return reply{status: 429, body: rateLimitedBody} },
			time.Minute, check{calls: 1, status: 429}},
		{"429 with an invalid hint is returned at once",
			func() reply { return reply{status: 429, header: header("Retry-After", "soon"), body: rateLimitedBody} },
			time.Minute, check{calls: 1, status: 429}},
		{"429 whose hint is past the deadline is returned at once",
			func() reply { return reply{status: 429, header: header("Retry-After", "60"), body: rateLimitedBody} },
			30 * time.Second, check{calls: 1, status: 429}},
		{"429 whose retry-after-ms is past the deadline is returned at once",
			func() reply {
				return reply{status: 429, header: header("Retry-After-Ms", "5000"), body: rateLimitedBody}
			},
			2 * time.Second, check{calls: 1, status: 429}},
		{"429 for a spent quota is returned at once, hint or not",
			func() reply {
				return reply{status: 429, header: header("Retry-After", "1"),
					body: `{"error":{"message":"You exceeded your current quota","type":"insufficient_quota","code":"insufficient_quota"}}`}
			},
			time.Minute, check{calls: 1, status: 429}},
		{"429 with a hint is not retried when hints are ignored",
			func() reply { return reply{status: 429, header: header("Retry-After", "1"), body: rateLimitedBody} },
			time.Minute, check{calls: 1, status: 429, policy: func(p *retry.Policy) { p.MaxRetryAfter = -1 }}},
		{"429 with a hint is not retried when Statuses leaves it out",
			func() reply { return reply{status: 429, header: header("Retry-After", "1"), body: rateLimitedBody} },
			time.Minute, check{calls: 1, status: 429, policy: func(p *retry.Policy) { p.Statuses = []int{502, 503} }}},
		{"429 with a hint spent on attempts returns the last 429",
			func() reply { return reply{status: 429, header: header("Retry-After", "1"), body: rateLimitedBody} },
			time.Minute, check{calls: 1, status: 429, policy: func(p *retry.Policy) { p.MaxAttempts = 1 }}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				first := c.first()
				base := &scriptedBase{script: []reply{first}}
				var p retry.Policy // the defaults: the hint replaces the schedule
				if c.want.policy != nil {
					c.want.policy(&p)
				}
				rt := retry.NewTransport(base, p)
				ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
				defer cancel()
				req, _ := http.NewRequestWithContext(ctx, "POST", "http://gateway.test/predict", strings.NewReader(`{}`))
				start := time.Now()
				resp, err := rt.RoundTrip(req)
				took := time.Since(start)
				if err != nil {
					t.Fatal(err)
				}
				if resp.StatusCode != c.want.status || base.calls() != c.want.calls {
					t.Fatalf("status %d after %d attempts, want %d after %d", resp.StatusCode, base.calls(), c.want.status, c.want.calls)
				}
				if c.want.calls == 1 {
					checkAttempts(t, resp, 1)
				}
				body := readAll(t, resp)
				if took != c.want.took {
					t.Errorf("RoundTrip took %v, want %v", took, c.want.took)
				}
				if c.want.calls > 1 {
					if g := base.gaps(); g[0] != c.want.wait {
						t.Errorf("waited %v before the retry, want %v", g[0], c.want.wait)
					}
					return
				}
				if string(body) != first.body {
					t.Errorf("body %q, want the 429's %q", body, first.body)
				}
			})
		})
	}
}

// dialRefused is the error of a dial to a port nothing listens on: a
// connection failure that never reached a server.
var dialRefused = &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}

// Every *streamguard.Error the transport returns says how long the request
// took from its first attempt when it was retried (Elapsed), and the
// context of each retry carries the first attempt's start, from which Check
// measures the Elapsed of a failure returned as a response.
func TestElapsed(t *testing.T) {
	const hop = 100 * time.Millisecond // each attempt's own duration

	t.Run("connection failures to the last attempt", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			base := &scriptedBase{script: []reply{{err: dialRefused, took: hop}, {err: dialRefused, took: hop}, {err: dialRefused, took: hop}}}
			var rec recorder
			rt := retry.NewTransport(base, retry.Policy{MaxAttempts: 3, Backoff: constant(time.Second), OnRetry: rec.OnRetry})
			_, err := do(t, rt, "GET", "http://gateway.test/predict", nil)
			se := asError(t, err)
			if se.Source != streamguard.SourceNetwork || se.Attempts != 3 {
				t.Fatalf("err = %v (%d attempts), want the connection failure after 3", err, se.Attempts)
			}
			if want := 3*hop + 2*time.Second; se.Elapsed != want {
				t.Errorf("Elapsed = %v, want %v", se.Elapsed, want)
			}
			// OnRetry sees each failure without Elapsed: it is not the
			// request's failure, and its hint must not say the retries are
			// spent.
			for i, want := range []time.Duration{0, 0} {
				if got := asError(t, rec.all()[i].Err).Elapsed; got != want {
					t.Errorf("OnRetry #%d: Elapsed = %v, want %v", i+1, got, want)
				}
			}
		})
	})

	t.Run("a single attempt has no Elapsed", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			base := &scriptedBase{script: []reply{{err: errors.New("boom"), took: hop}}}
			_, err := do(t, retry.NewTransport(base, retry.Policy{}), "GET", "http://gateway.test/", nil)
			if se := asError(t, err); se.Attempts != 1 || se.Elapsed != 0 {
				t.Errorf("Attempts %d, Elapsed %v; want 1, 0", se.Attempts, se.Elapsed)
			}
		})
	})

	t.Run("a failure that may have reached the server ends the retries", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			base := &scriptedBase{script: []reply{{err: dialRefused, took: hop}, {err: io.ErrUnexpectedEOF, took: hop}}}
			rt := retry.NewTransport(base, retry.Policy{Backoff: constant(time.Second)})
			_, err := do(t, rt, "POST", "http://gateway.test/predict", nil)
			se := asError(t, err)
			if se.Attempts != 2 || se.Elapsed != 2*hop+time.Second || base.calls() != 2 {
				t.Errorf("err = %v: Attempts %d, Elapsed %v after %d calls; want 2, %v", err, se.Attempts, se.Elapsed, base.calls(), 2*hop+time.Second)
			}
		})
	})

	t.Run("cancel during a wait returns the last failure with the time so far", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			base := &scriptedBase{script: []reply{{err: dialRefused}, {err: dialRefused}}}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			time.AfterFunc(1500*time.Millisecond, cancel) // in the second wait
			rt := retry.NewTransport(base, retry.Policy{Backoff: constant(time.Second)})
			req, _ := http.NewRequestWithContext(ctx, "GET", "http://gateway.test/", nil)
			_, err := rt.RoundTrip(req)
			se := asError(t, err)
			if se.Source != streamguard.SourceNetwork || se.Attempts != 2 || se.Elapsed != 1500*time.Millisecond {
				t.Errorf("err = %v: Attempts %d, Elapsed %v; want the connection failure, 2, 1.5s", err, se.Attempts, se.Elapsed)
			}
		})
	})

	t.Run("the deadline during an attempt returns the last failure with the time so far", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			base := &scriptedBase{script: []reply{{err: dialRefused}, {err: dialRefused}, {block: true}}}
			ctx, cancel := context.WithTimeout(context.Background(), 2500*time.Millisecond)
			defer cancel()
			rt := retry.NewTransport(base, retry.Policy{Backoff: constant(time.Second), MinAttemptTime: -1})
			req, _ := http.NewRequestWithContext(ctx, "GET", "http://gateway.test/", nil)
			_, err := rt.RoundTrip(req)
			se := asError(t, err)
			if se.Source != streamguard.SourceNetwork || se.Attempts != 3 || se.Elapsed != 2500*time.Millisecond {
				t.Errorf("err = %v: Attempts %d, Elapsed %v; want the connection failure, 3, 2.5s", err, se.Attempts, se.Elapsed)
			}
		})
	})

	t.Run("each retry's context carries the first attempt's start", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			draining := reply{status: 503, body: `{"error":"draining"}`, took: hop}
			base := &scriptedBase{script: []reply{draining, draining, draining}}
			rt := retry.NewTransport(base, retry.Policy{MaxAttempts: 3, Backoff: constant(time.Second)})
			start := time.Now()
			resp, err := do(t, rt, "GET", "http://gateway.test/predict", nil)
			if err != nil {
				t.Fatal(err)
			}
			checkAttempts(t, resp, 3)
			readAll(t, resp)
			ctx := resp.Request.Context()
			if ctxkey.Attempt(ctx) != 3 || !ctxkey.Start(ctx).Equal(start) {
				t.Errorf("attempt %d started %v, want 3 started %v", ctxkey.Attempt(ctx), ctxkey.Start(ctx), start)
			}
			if want := 3*hop + 2*time.Second; ctxkey.Elapsed(ctx) != want {
				t.Errorf("Elapsed %v, want %v", ctxkey.Elapsed(ctx), want)
			}
			for i, c := range base.ctxs {
				want := start
				if i == 0 {
					want = time.Time{} // the first attempt carries its number only
				}
				if ctxkey.Attempt(c) != i+1 || !ctxkey.Start(c).Equal(want) {
					t.Errorf("attempt %d's context: attempt %d, start %v", i+1, ctxkey.Attempt(c), ctxkey.Start(c))
				}
			}
		})
	})

	t.Run("a response of the first attempt has no start", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			base := &scriptedBase{script: []reply{{status: 404, body: `{"error":"not found"}`, took: hop}}}
			resp, err := do(t, retry.NewTransport(base, retry.Policy{}), "GET", "http://gateway.test/", nil)
			if err != nil {
				t.Fatal(err)
			}
			readAll(t, resp)
			if ctx := resp.Request.Context(); ctxkey.Attempt(ctx) != 1 || !ctxkey.Start(ctx).IsZero() || ctxkey.Elapsed(ctx) != 0 {
				t.Errorf("attempt %d, start %v, Elapsed %v", ctxkey.Attempt(ctx), ctxkey.Start(ctx), ctxkey.Elapsed(ctx))
			}
		})
	})

	t.Run("cancel during a wait returns the last response with the start", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			draining := reply{status: 503, body: `{"error":"draining"}`}
			base := &scriptedBase{script: []reply{draining, draining}}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			time.AfterFunc(1500*time.Millisecond, cancel)
			rt := retry.NewTransport(base, retry.Policy{Backoff: constant(time.Second)})
			req, _ := http.NewRequestWithContext(ctx, "GET", "http://gateway.test/", nil)
			start := time.Now()
			resp, err := rt.RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			readAll(t, resp)
			rc := resp.Request.Context()
			if ctxkey.Attempt(rc) != 2 || !ctxkey.Start(rc).Equal(start) || ctxkey.Elapsed(rc) != 1500*time.Millisecond {
				t.Errorf("attempt %d, start %v, Elapsed %v; want 2, %v, 1.5s", ctxkey.Attempt(rc), ctxkey.Start(rc), ctxkey.Elapsed(rc), start)
			}
		})
	})
}
