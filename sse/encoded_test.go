package sse_test

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/streamguard/streamguard"
	"github.com/streamguard/streamguard/sse"
)

// TestEncodedBodyPassedThrough: a caller that asks for gzip itself gets the
// body compressed (net/http decompresses only what it asked for): the guard
// passes it through as it came, and judges the transport alone, whatever
// its Content-Type; a cut of it is still truncated.
func TestEncodedBodyPassedThrough(t *testing.T) {
	var gz bytes.Buffer
	for n := 0; n < 1000 && !bytes.Contains(gz.Bytes(), []byte("\n")); n++ {
		// Compressed bytes with an LF among them, which a line parser
		// would take for a line end.
		gz.Reset()
		zw := gzip.NewWriter(&gz)
		for i := range 50 + n {
			fmt.Fprintf(zw, `{"model":"m","created_at":"2025-01-01T00:00:00Z","response":"tok %d","done":false}`+"\n", i)
		}
		io.WriteString(zw, `{"model":"m","created_at":"2025-01-01T00:00:01Z","response":"","done":true}`+"\n")
		zw.Close()
	}
	for _, ct := range []string{"application/x-ndjson", "text/event-stream"} {
		for _, cut := range []bool{false, true} {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", ct)
				w.Header().Set("Content-Encoding", "gzip")
				if !cut {
					w.Write(gz.Bytes())
					return
				}
				w.Header().Set("Content-Length", "100000")
				w.Write(gz.Bytes()[:gz.Len()/2])
				w.(http.Flusher).Flush()
				c, _, _ := http.NewResponseController(w).Hijack()
				c.Close()
			}))
			c := &http.Client{Transport: sse.NewTransport(http.DefaultTransport, sse.Config{})}
			req, _ := http.NewRequest(http.MethodPost, srv.URL+"/api/generate", strings.NewReader("{}"))
			req.Header.Set("Accept-Encoding", "gzip") // net/http leaves the body encoded
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			srv.Close()
			var se *streamguard.Error
			switch {
			case !cut && (err != nil || !bytes.Equal(got, gz.Bytes())):
				t.Errorf("%s: %d of %d bytes, %v", ct, len(got), gz.Len(), err)
			case cut && (!errors.As(err, &se) || se.Reason != streamguard.ReasonTruncated || !bytes.Equal(got, gz.Bytes()[:gz.Len()/2])):
				t.Errorf("%s, cut: %d bytes, %v", ct, len(got), err)
			}
		}
	}
}

// TestFirstEventCut: a body that ends cleanly inside its first event or
// JSON line is truncated (retryable), not a body without events; text that
// is neither is still no_events.
func TestFirstEventCut(t *testing.T) {
	for _, c := range []struct{ ct, body, reason string }{
		{"application/x-ndjson", `{"model":"llama3.2","created_at":"2025-01-01T00:00:00Z","mess`, "truncated"},
		{"application/x-ndjson", "\ufeff\n[1, 2", "truncated"},
		{"application/json-seq", "\x1e{\"a\":", "truncated"},
		{"text/event-stream", ": ping\n\ndata: {\"choices\":[{\"del", "truncated"},
		{"text/event-stream", "event: message\ndata: {}", "truncated"},
		{"text/event-stream", ": keep-alive\r\n: again\ndata: {\"choices\":[{\"del", "truncated"},
		{"text/event-stream", ": keep-alive\n: no line end", "no_events"},
		{"text/event-stream", strings.Repeat(": p\n", 1001) + "data: {\"choices\":[{\"del", "truncated"},
		{"application/x-ndjson", "<html><body>Bad gateway", "no_events"},
		{"text/event-stream", "Bad gateway", "no_events"},
		{"text/event-stream", ": ping\n\n", "no_events"},
	} {
		resp := &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {c.ct}}, ContentLength: -1,
			Body: &chunkedBody{data: []byte(c.body), k: 5}}
		sse.Guard(resp, sse.Config{})
		_, err := io.ReadAll(resp.Body)
		var se *streamguard.Error
		if !errors.As(err, &se) || string(se.Reason) != c.reason || se.Retryable != (c.reason == "truncated" || se.Code == "comments") {
			t.Errorf("%s %q: %v, want %s", c.ct, c.body, err, c.reason)
		}
	}
}

// TestEncodedCodings: a coding in a list, or on a second header line, is a
// coding; identity alone is none.
func TestEncodedCodings(t *testing.T) {
	for _, c := range []struct {
		enc     []string
		encoded bool
	}{
		{[]string{"identity, gzip"}, true},
		{[]string{"identity", "br"}, true},
		{[]string{" identity "}, false},
		{nil, false},
	} {
		resp := &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"text/event-stream"}, "Content-Encoding": c.enc},
			ContentLength: -1, Body: &chunkedBody{data: []byte("\x1f\x8b\x08 not events"), k: 4}}
		sse.Guard(resp, sse.Config{})
		got, err := io.ReadAll(resp.Body)
		if passed := err == nil && string(got) == "\x1f\x8b\x08 not events"; passed != c.encoded {
			t.Errorf("Content-Encoding %q: %q, %v", c.enc, got, err)
		}
	}
}

// TestEncodedNoBody: an event stream announced with no body at all is a
// stream without events, whatever coding it names.
func TestEncodedNoBody(t *testing.T) {
	resp := &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"text/event-stream"}, "Content-Encoding": {"gzip"}},
		Body: http.NoBody}
	sse.Guard(resp, sse.Config{})
	_, err := io.ReadAll(resp.Body)
	var se *streamguard.Error
	if !errors.As(err, &se) || se.Reason != streamguard.ReasonNoEvents {
		t.Errorf("verdict %v, want no_events", err)
	}
}
