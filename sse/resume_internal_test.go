package sse

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

// TestIDLessGETIsNotFollowed: a GET whose first event has no id is no
// stream to resume by id; the guard stops following it after that event,
// and its events take the fast path again.
func TestIDLessGETIsNotFollowed(t *testing.T) {
	req, _ := http.NewRequest(http.MethodGet, "http://x/v1/stream", nil)
	chunk := `data: {"id":"c","object":"chat.completion.chunk","choices":[]}` + "\n\n"
	resp := &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"text/event-stream"}},
		Body: io.NopCloser(strings.NewReader(strings.Repeat(chunk, 40) + "data: [DONE]\n\n")), Request: req}
	guard(resp, Config{}, http.DefaultTransport)
	b := resp.Body.(*body)
	if b.rs == nil || b.rs.st == nil {
		t.Fatal("the sse-id resumer does not follow a GET event stream")
	}
	if _, err := io.ReadAll(b); err != nil {
		t.Fatal(err)
	}
	if b.rs.st != nil || !b.fast {
		t.Fatalf("still followed (%v), fast path %v", b.rs.st != nil, b.fast)
	}
}
