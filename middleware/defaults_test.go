package middleware_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/streamguard/streamguard"
	"github.com/streamguard/streamguard/middleware"
	"github.com/streamguard/streamguard/sse"
)

// The tests of what NewClient(Config{}) gives a new user, with no option
// but the in-memory Base that lets them run on the synctest bubble's clock.

// memBase answers each request with answer(n, req), n counting from 1, in
// memory, so that the whole stack runs inside a synctest bubble.
type memBase struct {
	calls  atomic.Int32
	answer func(n int, req *http.Request) *http.Response
}

func (m *memBase) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil {
		io.Copy(io.Discard, req.Body)
		req.Body.Close()
	}
	resp := m.answer(int(m.calls.Add(1)), req)
	resp.Request = req
	if resp.Header == nil {
		resp.Header = http.Header{}
	}
	return resp, nil
}

func statusResponse(status int, body string, header ...string) *http.Response {
	h := http.Header{"Content-Type": {"application/json"}}
	for i := 0; i+1 < len(header); i += 2 {
		h.Set(header[i], header[i+1])
	}
	return &http.Response{StatusCode: status, Header: h, Body: io.NopCloser(strings.NewReader(body))}
}

// defaultClient is NewClient(Config{}) over base.
func defaultClient(base http.RoundTripper) *http.Client {
	return middleware.NewClient(middleware.Config{Base: base})
}

// Issue point 1: with the zero Config, an event stream that stops sending
// ends as stalled after sse.DefaultIdleTimeout, not at the budget.
func TestDefaultsStalledStreamEnds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var pw *io.PipeWriter
		base := &memBase{answer: func(int, *http.Request) *http.Response {
			var pr *io.PipeReader
			pr, pw = io.Pipe()
			go func() {
				io.WriteString(pw, `data: {"id":"chatcmpl-1","object":"chat.completion.chunk","choices":[]}`+"\n\n")
			}()
			return &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"text/event-stream"}}, Body: pr}
		}}
		resp, err := defaultClient(base).Get("http://gateway.test/v1/chat/completions")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		start := time.Now()
		_, err = io.ReadAll(resp.Body)
		var se *streamguard.Error
		if !errors.As(err, &se) || se.Reason != streamguard.ReasonStalled || se.Events != 1 {
			t.Fatalf("err = %v", err)
		}
		if took := time.Since(start); took != sse.DefaultIdleTimeout {
			t.Errorf("stalled after %v, want %v", took, sse.DefaultIdleTimeout)
		}
		pw.Close()
	})
}

// With the zero Config, a 503 whose body stops sending is answered after
// sse.DefaultIdleTimeout per attempt, not at the budget: every layer that
// classifies it reads its body, and the body is cut once a read waits that
// long. Its status and message still reach the caller.
func TestDefaultsStalledErrorBody(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var pipes []*io.PipeWriter
		base := &memBase{answer: func(int, *http.Request) *http.Response {
			pr, pw := io.Pipe()
			pipes = append(pipes, pw)
			go io.WriteString(pw, `{"error":{"message":"model overloaded"}}`)
			return &http.Response{StatusCode: 503, Header: http.Header{"Content-Type": {"application/json"}}, Body: pr}
		}}
		start := time.Now()
		resp, err := defaultClient(base).Get("http://gateway.test/v1/chat/completions")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		se, _ := streamguard.Check(resp).(*streamguard.Error)
		if se == nil || resp.StatusCode != 503 || !strings.Contains(se.Message, "model overloaded") {
			t.Fatalf("status %d, %v; want the 503 and its message", resp.StatusCode, se)
		}
		n := time.Duration(base.calls.Load())
		if took := time.Since(start); n < 2 || took < n*sse.DefaultIdleTimeout || took >= n*sse.DefaultIdleTimeout+5*time.Minute {
			t.Errorf("%d attempts answered after %v; want %v each, and the retries' waits", n, took, sse.DefaultIdleTimeout)
		}
		for _, pw := range pipes {
			pw.Close()
		}
	})
}

// Issue point 2: a budget the caller sets is the deadline, exactly; the
// server is told that budget, and the hint quotes it.
func TestDefaultsUserBudgetIsTheDeadline(t *testing.T) {
	seen := make(chan string, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen <- r.Header.Get(middleware.TimeoutHeader)
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\"}\n\n")
		http.NewResponseController(w).Flush()
		<-r.Context().Done() // a stall the budget must end
	}))
	defer srv.Close()
	const budget = 300 * time.Millisecond
	c := middleware.NewClient(middleware.Config{Budget: budget})
	defer c.CloseIdleConnections()
	start := time.Now()
	resp, err := c.Get(srv.URL + "/v1/chat/completions")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	_, err = io.ReadAll(resp.Body)
	took := time.Since(start)
	var se *streamguard.Error
	if !errors.As(err, &se) || se.Reason != streamguard.ReasonTimeout || se.Source != streamguard.SourcePlatform {
		t.Fatalf("err = %v", err)
	}
	if se.Budget != budget || !strings.Contains(se.Hint(), "budget of 300ms") {
		t.Errorf("Budget %v, hint %q: want the budget in force", se.Budget, se.Hint())
	}
	// No grace on a budget the caller chose: far under budget + DefaultGrace
	// (a loopback server keeps this on the wall clock; the bound is loose).
	if took >= budget+middleware.DefaultGrace/2 {
		t.Errorf("ended after %v", took)
	}
	if ms, err := strconv.Atoi(<-seen); err != nil || ms > int(budget.Milliseconds()) || ms < 1 {
		t.Errorf("%s = %d (%v), want at most %d", middleware.TimeoutHeader, ms, err, budget.Milliseconds())
	}
}

// The platform's default budget keeps its grace, and its hint names it.
func TestDefaultsPlatformBudgetHint(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		base := &memBase{answer: func(_ int, req *http.Request) *http.Response {
			pr, pw := io.Pipe()
			go func() {
				<-req.Context().Done()
				pw.CloseWithError(context.Cause(req.Context()))
			}()
			return &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"application/octet-stream"}}, Body: pr}
		}}
		start := time.Now()
		resp, err := defaultClient(base).Post("http://gateway.test/predict", "application/json", strings.NewReader("{}"))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		_, err = io.ReadAll(resp.Body)
		var se *streamguard.Error
		if !errors.As(err, &se) || se.Reason != streamguard.ReasonTimeout || se.Budget != streamguard.SyncBudget {
			t.Fatalf("err = %v (budget %v)", err, se.Budget)
		}
		if took := time.Since(start); took != streamguard.SyncBudget+middleware.DefaultGrace {
			t.Errorf("ended after %v", took)
		}
		if !strings.Contains(se.Hint(), "platform's budget of 1200 s") {
			t.Errorf("hint %q", se.Hint())
		}
	})
}

// Issue point 5: a 429 that says when to come back is retried by default,
// after the wait it names.
func TestDefaults429WithRetryAfter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		base := &memBase{answer: func(n int, _ *http.Request) *http.Response {
			if n == 1 {
				return statusResponse(429, `{"error":"rate limited"}`, "Retry-After", "2")
			}
			return statusResponse(200, `{"output":"ok"}`)
		}}
		start := time.Now()
		resp, err := defaultClient(base).Get("http://gateway.test/predict")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 || base.calls.Load() != 2 || time.Since(start) != 2*time.Second {
			t.Errorf("status %d after %d calls and %v", resp.StatusCode, base.calls.Load(), time.Since(start))
		}
	})
}

// Issue point 6: once the stack has retried and given up, the hint says how
// many attempts failed over how long, and no longer advises a retry.
func TestDefaultsHintAfterRetries(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		base := &memBase{answer: func(int, *http.Request) *http.Response {
			return statusResponse(503, `{"error":"Service Unavailable"}`)
		}}
		resp, err := defaultClient(base).Get("http://gateway.test/predict")
		if err != nil {
			t.Fatal(err)
		}
		err = streamguard.Check(resp)
		resp.Body.Close()
		var se *streamguard.Error
		if !errors.As(err, &se) || se.Attempts != 5 || se.Elapsed <= 0 {
			t.Fatalf("err = %v", err)
		}
		h := se.Hint()
		if !strings.HasPrefix(h, "5 attempts over ") || strings.Contains(h, "retry with") {
			t.Errorf("hint %q", h)
		}
		if strings.Count(err.Error(), h) != 1 {
			t.Errorf("the hint is not in the error once: %q", err.Error())
		}
	})
}

// Issue point 3: a final error body the SDKs cannot parse reaches the caller
// as the error's JSON document; Check still classifies it as the platform's
// own body; RawErrorBodies and ErrorStatus change what the caller gets.
func TestDefaultsErrorBodies(t *testing.T) {
	const body = `{"error":"Service Unavailable"}`
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusServiceUnavailable)
		io.WriteString(w, body)
	}))
	defer srv.Close()
	get := func(cfg middleware.Config) (*http.Response, []byte, error) {
		cfg.Retry.MaxAttempts = -1 // one attempt: the body is what matters here
		c := middleware.NewClient(cfg)
		defer c.CloseIdleConnections()
		resp, err := c.Get(srv.URL + "/v1/chat/completions")
		if err != nil {
			return nil, nil, err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return resp, b, err
	}

	resp, b, err := get(middleware.Config{})
	if err != nil || resp.StatusCode != 503 || !strings.HasPrefix(string(b), `{"error":{"message":"streamguard: 503 platform unavailable: Service Unavailable`) {
		t.Fatalf("default: %v %q", err, b)
	}
	resp.Body = io.NopCloser(strings.NewReader(string(b)))
	var se *streamguard.Error
	if !errors.As(streamguard.Check(resp), &se) || se.Reason != streamguard.ReasonUnavailable || se.Message != "Service Unavailable" || !se.Retryable {
		t.Errorf("Check of the conformed body: %+v", se)
	}

	if _, b, err = get(middleware.Config{RawErrorBodies: true}); err != nil || string(b) != body {
		t.Errorf("RawErrorBodies: %v %q", err, b)
	}
	if _, _, err = get(middleware.Config{ErrorStatus: true}); !errors.As(err, &se) || se.StatusCode != 503 || se.Reason != streamguard.ReasonUnavailable {
		t.Errorf("ErrorStatus: %v", err)
	}
}
