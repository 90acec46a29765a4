package retry_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/streamguard/streamguard"
	"github.com/streamguard/streamguard/retry"
)

// slowBody is a body of n chunks, each after gap of the bubble's time.
type slowBody struct {
	n   int
	gap time.Duration
}

func (b *slowBody) Read(p []byte) (int, error) {
	if b.n == 0 {
		return 0, io.EOF
	}
	time.Sleep(b.gap)
	b.n--
	return copy(p, "data: x\n\n"), nil
}

func (b *slowBody) Close() error { return nil }

// Issue bullet: a per-attempt timeout for the time to response headers,
// apart from the overall budget: an attempt without headers in time is
// abandoned and retried, whatever the method; the body is not bounded; the
// attempt's context is released when the body ends. In a synctest bubble,
// the durations are exact.
func TestHeaderTimeout(t *testing.T) {
	const timeout, wait = 2 * time.Second, 100 * time.Millisecond
	synctest.Test(t, func(t *testing.T) {
		var ctxs []context.Context
		base := roundTripFunc(func(r *http.Request) (*http.Response, error) {
			ctxs = append(ctxs, r.Context())
			if len(ctxs) == 1 {
				<-r.Context().Done() // a gateway that never answers
				return nil, r.Context().Err()
			}
			return &http.Response{StatusCode: 200, Header: http.Header{}, Request: r,
				Body: &slowBody{n: 3, gap: 10 * timeout}}, nil
		})
		rt := retry.NewTransport(base, retry.Policy{HeaderTimeout: timeout, Backoff: constant(wait)})
		req, _ := http.NewRequest("POST", "http://gateway.test/v1/chat/completions", strings.NewReader("{}"))
		start := time.Now()
		resp, err := rt.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		if took := time.Since(start); took != timeout+wait {
			t.Errorf("headers after %v, want the timeout and one wait, %v", took, timeout+wait)
		}
		if cause := context.Cause(ctxs[0]); !errors.Is(cause, retry.ErrHeaderTimeout) {
			t.Errorf("the abandoned attempt's cause %v", cause)
		}
		body, err := io.ReadAll(resp.Body)
		if err != nil || len(body) != 3*len("data: x\n\n") {
			t.Errorf("body %q, %v: a body slower than the header timeout must be whole", body, err)
		}
		if ctxs[1].Err() == nil {
			t.Error("the answered attempt's context is not released at the end of its body")
		}
		resp.Body.Close()
	})
}

// When every attempt times out, the error says timeout, wraps
// ErrHeaderTimeout and counts the attempts.
func TestHeaderTimeoutSpent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		base := &scriptedBase{script: []reply{{block: true}, {block: true}, {block: true}}}
		rt := retry.NewTransport(base, retry.Policy{MaxAttempts: 3, HeaderTimeout: time.Second, Backoff: constant(time.Millisecond)})
		req, _ := http.NewRequest("POST", "http://gateway.test/predict", strings.NewReader("{}"))
		resp, err := rt.RoundTrip(req)
		if resp != nil || !errors.Is(err, retry.ErrHeaderTimeout) {
			t.Fatalf("resp %v, err %v: want ErrHeaderTimeout", resp, err)
		}
		se := asError(t, err)
		if se.Reason != streamguard.ReasonTimeout || se.Attempts != 3 || base.calls() != 3 {
			t.Errorf("error %+v after %d calls, want timeout after 3", se, base.calls())
		}
	})
}

// An attempt answered in time keeps its body whole however long it takes.
func TestHeaderTimeoutDoesNotBoundTheBody(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		base := roundTripFunc(func(r *http.Request) (*http.Response, error) {
			time.Sleep(500 * time.Millisecond)
			return &http.Response{StatusCode: 200, Header: http.Header{}, Request: r,
				Body: &slowBody{n: 2, gap: time.Minute}}, nil
		})
		rt := retry.NewTransport(base, retry.Policy{HeaderTimeout: time.Second})
		req, _ := http.NewRequest("GET", "http://gateway.test/stream", nil)
		resp, err := rt.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if b, err := io.ReadAll(resp.Body); err != nil || len(b) == 0 {
			t.Errorf("body %q, %v", b, err)
		}
	})
}

// Over a real loopback connection, the abandoned attempt's request is
// canceled on the server, and the retry answers.
func TestHeaderTimeoutLoopback(t *testing.T) {
	abandoned := make(chan bool, 1)
	var calls atomic.Int32
	srv := newPlainServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			// net/http notices a closed connection once the body is read.
			io.Copy(io.Discard, r.Body)
			select {
			case <-r.Context().Done():
				abandoned <- true
			case <-time.After(testTimeout):
				abandoned <- false
			}
			return
		}
		io.WriteString(w, `{"ok":true}`)
	}))
	// 100 ms is a floor, not a bound the test measures: the first attempt
	// waits for it and is retried however long the machine takes.
	rt := retry.NewTransport(plainTransport(t), fast(retry.Policy{HeaderTimeout: 100 * time.Millisecond}))
	resp, err := do(t, rt, "POST", srv.URL+"/predict", strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	if b := readAll(t, resp); string(b) != `{"ok":true}` {
		t.Errorf("body %q", b)
	}
	if !<-abandoned {
		t.Error("the server never saw the abandoned attempt canceled")
	}
}
