package middleware_test

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/streamguard/streamguard"
	"github.com/streamguard/streamguard/middleware"
)

// countingBody counts the bytes read from it.
type countingBody struct {
	r io.Reader
	n *atomic.Int64
}

func (c countingBody) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

func (countingBody) Close() error { return nil }

// An error response is classified by the span, the retry layer, the final
// error layer and the caller's Check, and its body is read from the
// transport once: the first MaxErrorBody bytes and one more, whatever its
// size.
func TestErrorBodyReadOnce(t *testing.T) {
	var read atomic.Int64
	page := "<html><title>503 Service Temporarily Unavailable</title>" + strings.Repeat("x", 1<<20) + "</html>"
	base := &memBase{answer: func(int, *http.Request) *http.Response {
		return &http.Response{StatusCode: 503, Header: http.Header{"Content-Type": {"text/html"}},
			Body: countingBody{strings.NewReader(page), &read}}
	}}
	for _, cfg := range []middleware.Config{
		{Base: base, RawErrorBodies: true},
		{Base: base, ErrorStatus: true},
	} {
		read.Store(0)
		cfg.Retry.MaxAttempts = -1
		resp, err := middleware.NewClient(cfg).Get("http://gateway.test/predict")
		var se *streamguard.Error
		if cfg.ErrorStatus {
			if !errors.As(err, &se) || se.Reason != streamguard.ReasonUnavailable {
				t.Fatalf("ErrorStatus: %v", err)
			}
		} else {
			if err != nil || !errors.As(streamguard.Check(resp), &se) || se.Message != "503 Service Temporarily Unavailable" {
				t.Fatalf("RawErrorBodies: %v %v", err, se)
			}
			resp.Body.Close()
		}
		if got := read.Load(); got != streamguard.MaxErrorBody+1 {
			t.Errorf("ErrorStatus %v: %d bytes read from the transport, want %d", cfg.ErrorStatus, got, streamguard.MaxErrorBody+1)
		}
	}
}
