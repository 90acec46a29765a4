package sse_test

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/streamguard/streamguard"
	"github.com/streamguard/streamguard/sse"
)

// stallAfter guards a body of content type ct that sends the given events
// and then nothing, and returns when Read ended, on the bubble's clock, and
// with what error.
func stallAfter(t *testing.T, ct string, cfg sse.Config, events ...string) (time.Duration, error) {
	t.Helper()
	pr, pw := io.Pipe()
	resp := &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {ct}}, Body: pr}
	sse.Guard(resp, cfg)
	defer resp.Body.Close()
	done := make(chan struct{})
	go func() {
		for _, ev := range events {
			if _, err := io.WriteString(pw, ev); err != nil {
				return
			}
		}
		// Far past every default: a stream the guard lets hang ends here.
		select {
		case <-time.After(2 * streamguard.SyncBudget):
			pw.CloseWithError(io.ErrUnexpectedEOF)
		case <-done:
		}
	}()
	start := time.Now()
	_, err := io.ReadAll(resp.Body)
	elapsed := time.Since(start)
	close(done)
	return elapsed, err
}

func stalled(err error) bool {
	var se *streamguard.Error
	return errors.As(err, &se) && se.Reason == streamguard.ReasonStalled && errors.Is(err, sse.ErrIdleTimeout)
}

// With the zero Config, an event stream that stops sending is stalled
// after DefaultIdleTimeout, and one that never starts after
// DefaultFirstByteTimeout.
func TestDefaultIdleTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		took, err := stallAfter(t, sseType, sse.Config{}, chunk(0), chunk(1))
		if !stalled(err) || took != sse.DefaultIdleTimeout || !strings.Contains(err.Error(), "no bytes for 2m0s") {
			t.Errorf("after two events: %v after %v", err, took)
		}
		took, err = stallAfter(t, sseType, sse.Config{})
		if !stalled(err) || took != sse.DefaultFirstByteTimeout || !strings.Contains(err.Error(), "no first byte within 10m0s") {
			t.Errorf("before the first byte: %v after %v", err, took)
		}
	})
}

// A comment or ping is a sign of life: a stream that sends only comments
// for longer than the idle timeout is not stalled.
func TestIdleTimeoutCommentsKeepAlive(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		pr, pw := io.Pipe()
		resp := &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {sseType}}, Body: pr}
		sse.Guard(resp, sse.Config{})
		defer resp.Body.Close()
		go func() {
			io.WriteString(pw, chunk(0))
			for range 10 { // 10 x 100 s of comments: past DefaultIdleTimeout many times
				time.Sleep(100 * time.Second)
				io.WriteString(pw, ": keep-alive\n\n")
			}
			io.WriteString(pw, "data: [DONE]\n\n")
			pw.Close()
		}()
		if _, err := io.ReadAll(resp.Body); err != nil {
			t.Fatalf("a stream of comments: %v", err)
		}
	})
}

// Explicit values: a FirstByteTimeout shorter or longer than the idle
// timeout; negative FirstByteTimeout (the idle timeout from the start);
// negative IdleTimeout (off, the first byte included); a positive
// IdleTimeout applies to bodies that are not event streams too, the zero
// one does not.
func TestIdleTimeoutSettings(t *testing.T) {
	cases := []struct {
		name    string
		ct      string
		cfg     sse.Config
		events  []string
		stalled bool
		after   time.Duration
	}{
		{"short first byte", sseType, sse.Config{FirstByteTimeout: 5 * time.Second}, nil, true, 5 * time.Second},
		{"short first byte, then idle", sseType, sse.Config{FirstByteTimeout: 5 * time.Second}, []string{chunk(0)}, true, sse.DefaultIdleTimeout},
		{"long idle raises the first byte's wait", sseType, sse.Config{IdleTimeout: 900 * time.Second}, nil, true, 900 * time.Second},
		{"negative first byte", sseType, sse.Config{IdleTimeout: 30 * time.Second, FirstByteTimeout: -1}, nil, true, 30 * time.Second},
		{"off", sseType, sse.Config{IdleTimeout: -1}, []string{chunk(0)}, false, 2 * streamguard.SyncBudget},
		{"off before the first byte", sseType, sse.Config{IdleTimeout: -1, FirstByteTimeout: time.Second}, nil, false, 2 * streamguard.SyncBudget},
		{"raw body, zero config", "application/octet-stream", sse.Config{}, []string{"abc"}, false, 2 * streamguard.SyncBudget},
		{"raw body, set", "application/octet-stream", sse.Config{IdleTimeout: 30 * time.Second}, []string{"abc"}, true, 30 * time.Second},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				took, err := stallAfter(t, c.ct, c.cfg, c.events...)
				if stalled(err) != c.stalled || took != c.after {
					t.Errorf("%v after %v; want stalled %v after %v", err, took, c.stalled, c.after)
				}
			})
		})
	}
}

// An event stream announced with no body at all (HTTP/1.1 Content-Length: 0,
// or HTTP/2 headers that end the stream: net/http gives http.NoBody) fails
// with no_events; a 204, or the answer to a HEAD, is left alone.
func TestEventStreamWithoutBody(t *testing.T) {
	h := http.Header{"Content-Type": {sseType}}
	resp := &http.Response{StatusCode: 200, Header: h, Body: http.NoBody}
	sse.Guard(resp, sse.Config{})
	_, err := io.ReadAll(resp.Body)
	var se *streamguard.Error
	if !errors.As(err, &se) || se.Reason != streamguard.ReasonNoEvents || se.Code != "empty" {
		t.Fatalf("err = %v", err)
	}
	for _, resp := range []*http.Response{
		{StatusCode: 204, Header: h, Body: http.NoBody},
		{StatusCode: 200, Header: h, Body: http.NoBody, Request: &http.Request{Method: http.MethodHead}},
		{StatusCode: 200, Header: http.Header{"Content-Type": {"application/json"}}, Body: http.NoBody},
	} {
		sse.Guard(resp, sse.Config{})
		if resp.Body != http.NoBody {
			t.Errorf("%d %v: body replaced", resp.StatusCode, resp.Header)
		}
	}
}
