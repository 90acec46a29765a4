package retry_test

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/streamguard/streamguard"
	"github.com/streamguard/streamguard/gatewaytest"
	"github.com/streamguard/streamguard/retry"
)

// checkCall is one call of a CheckRetry: the status (0: no response), the
// reason of the error it was given, and the built-in decision.
type checkCall struct {
	status  int
	reason  streamguard.Reason
	builtin bool
}

// checkRecorder is a CheckRetry that records its calls and answers with
// decide.
type checkRecorder struct {
	mu     sync.Mutex
	calls  []checkCall
	decide func(resp *http.Response, builtin bool) (bool, error)
}

func (c *checkRecorder) CheckRetry(_ context.Context, resp *http.Response, err error, builtin bool) (bool, error) {
	call := checkCall{builtin: builtin}
	if resp != nil {
		call.status = resp.StatusCode
	}
	var se *streamguard.Error
	if errors.As(err, &se) {
		call.reason = se.Reason
	}
	c.mu.Lock()
	c.calls = append(c.calls, call)
	c.mu.Unlock()
	return c.decide(resp, builtin)
}

func (c *checkRecorder) all() []checkCall {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]checkCall(nil), c.calls...)
}

// onRoute retries the 500s of the /flaky route, refuses every retry on the
// /once route, and keeps the policy's decision elsewhere.
func onRoute(resp *http.Response, builtin bool) (bool, error) {
	switch path := resp.Request.URL.Path; {
	case path == "/flaky" && resp.StatusCode == 500:
		return true, nil
	case path == "/once":
		return false, nil
	}
	return builtin, nil
}

// Issue bullet: a predicate decides retries from (ctx, resp, err) after the
// built-in classification: it retries the 500s of one route, refuses the
// retries of another, sees the built-in decision, and is not asked about a
// success.
func TestCheckRetry(t *testing.T) {
	cases := []struct {
		name     string
		path     string
		faults   []gatewaytest.Fault
		requests int64
		status   int
		calls    []checkCall
	}{
		{"the 500s of one route are retried", "/flaky", []gatewaytest.Fault{gatewaytest.Status(500, `{"error":"boom"}`)},
			2, 200, []checkCall{{500, "", false}}},
		{"the 500s of another route are not", "/stable", []gatewaytest.Fault{gatewaytest.Status(500, `{"error":"boom"}`)},
			1, 500, []checkCall{{500, "", false}}},
		{"a route that refuses retries returns its 503", "/once", []gatewaytest.Fault{gatewaytest.Draining(0)},
			1, 503, []checkCall{{503, "", true}}},
		{"elsewhere the 503 is retried", "/stable", []gatewaytest.Fault{gatewaytest.Draining(0), gatewaytest.Draining(0)},
			3, 200, []checkCall{{503, "", true}, {503, "", true}}},
		{"a success is not asked about", "/stable", nil, 1, 200, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			gw := gatewaytest.NewServer(gatewaytest.JSON(200, `{"ok":true}`))
			defer gw.Close()
			gw.Script(c.faults...)
			rec := &checkRecorder{decide: onRoute}
			rt := retry.NewTransport(gw.Client().Transport, fast(retry.Policy{CheckRetry: rec.CheckRetry}))
			resp, err := do(t, rt, "POST", gw.URL+c.path, strings.NewReader(`{}`))
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != c.status || gw.Requests() != c.requests {
				t.Errorf("status %d after %d requests, want %d after %d", resp.StatusCode, gw.Requests(), c.status, c.requests)
			}
			if c.status >= 400 {
				checkAttempts(t, resp, int(c.requests)) // the body is still whole
			}
			readAll(t, resp)
			if got := rec.all(); !slices.Equal(got, c.calls) {
				t.Errorf("CheckRetry calls %+v, want %+v", got, c.calls)
			}
		})
	}
}

// CheckRetry is asked about a round trip without a response with the
// classified error, and may retry what the policy would not.
func TestCheckRetryNoResponse(t *testing.T) {
	srv := newPlainServer(t, http.NotFoundHandler())
	url := srv.URL
	srv.Close() // connection refused from now on
	rec := &checkRecorder{decide: func(_ *http.Response, builtin bool) (bool, error) { return builtin, nil }}
	rt := retry.NewTransport(plainTransport(t), fast(retry.Policy{MaxAttempts: 2, CheckRetry: rec.CheckRetry}))
	_, err := do(t, rt, "POST", url+"/predict", strings.NewReader(`{}`))
	if se := asError(t, err); se.Reason != streamguard.ReasonConnection || se.Attempts != 2 {
		t.Errorf("error %v: want connection after 2 attempts", se)
	}
	want := []checkCall{{0, streamguard.ReasonConnection, true}, {0, streamguard.ReasonConnection, true}}
	if got := rec.all(); !slices.Equal(got, want) {
		t.Errorf("CheckRetry calls %+v, want %+v", got, want)
	}
}

var errStop = errors.New("stop: this tenant is over its quota")

// An error from CheckRetry or BeforeRetry stops the request at once with an
// error that wraps the hook's and the attempt's classified failure.
func TestHooksAbort(t *testing.T) {
	cases := []struct {
		name     string
		policy   retry.Policy
		requests int64
	}{
		{"CheckRetry", retry.Policy{CheckRetry: func(context.Context, *http.Response, error, bool) (bool, error) {
			return false, errStop
		}}, 1},
		{"BeforeRetry at the second retry", retry.Policy{BeforeRetry: func(a retry.Attempt) error {
			if a.N == 2 {
				return errStop
			}
			return nil
		}}, 2},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			gw := gatewaytest.NewServer(gatewaytest.JSON(200, `{"ok":true}`))
			defer gw.Close()
			gw.Script(gatewaytest.Unreachable(), gatewaytest.Unreachable(), gatewaytest.Unreachable())
			var rec recorder
			c.policy.OnRetry = rec.OnRetry
			rt := retry.NewTransport(gw.Client().Transport, fast(c.policy))
			resp, err := do(t, rt, "POST", gw.URL+"/predict", strings.NewReader(`{}`))
			if resp != nil || !errors.Is(err, errStop) {
				t.Fatalf("resp %v, err %v: want errStop", resp, err)
			}
			se := asError(t, err)
			if se.StatusCode != 502 || se.Reason != streamguard.ReasonUnreachable || se.Attempts != int(c.requests) {
				t.Errorf("last failure %+v, want the 502 unreachable after %d attempts", se, c.requests)
			}
			if gw.Requests() != c.requests || len(rec.all()) != int(c.requests)-1 {
				t.Errorf("%d requests, %d OnRetry calls: want %d and %d", gw.Requests(), len(rec.all()), c.requests, c.requests-1)
			}
		})
	}
}

// BeforeRetry sees the attempt that failed, the wait, and the caller's
// request, before OnRetry.
func TestBeforeRetry(t *testing.T) {
	gw := gatewaytest.NewServer(gatewaytest.JSON(200, `{"ok":true}`))
	defer gw.Close()
	gw.Script(gatewaytest.Draining(0))
	var mu sync.Mutex
	var order []string
	var seen retry.Attempt
	rt := retry.NewTransport(gw.Client().Transport, fast(retry.Policy{
		BeforeRetry: func(a retry.Attempt) error {
			mu.Lock()
			defer mu.Unlock()
			order, seen = append(order, "before"), a
			return nil
		},
		OnRetry: func(retry.Attempt) {
			mu.Lock()
			defer mu.Unlock()
			order = append(order, "on")
		},
	}))
	resp, err := do(t, rt, "POST", gw.URL+"/v1/chat", strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	readAll(t, resp)
	mu.Lock()
	defer mu.Unlock()
	if strings.Join(order, ",") != "before,on" {
		t.Errorf("hooks called %v, want before,on", order)
	}
	if seen.N != 1 || seen.StatusCode != 503 || seen.Delay <= 0 || seen.Request == nil || seen.Request.URL.Path != "/v1/chat" {
		t.Errorf("BeforeRetry saw %+v", seen)
	}
	if se := asError(t, seen.Err); se.Reason != streamguard.ReasonUnavailable {
		t.Errorf("BeforeRetry's error %v", se)
	}
}
