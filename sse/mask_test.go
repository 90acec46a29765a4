package sse_test

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/streamguard/streamguard"
	"github.com/streamguard/streamguard/sse"
)

// TestErrorEventMasked: an error event or record that echoes the request's
// key (a relay's own, which it passes on to its caller) is passed on with
// the key masked in place, the bytes' length kept, however the reads split
// it; an event that is not an error is passed on as it came.
func TestErrorEventMasked(t *testing.T) {
	const key = "bt0x9QzLmN4pR7sT2vW5yA8cE1gH3jK6" // no known shape: only the request has it
	const shape = "sk-proj-Ab12Cd34Ef56Gh78"       // a key shape the request does not have
	cases := []struct{ ct, before, errEvent string }{
		{"text/event-stream", "data: {\"text\":\"" + shape + "\"}\n\n",
			"event: error\ndata: {\"error\":{\"message\":\"key " + key + " is over quota\",\n" +
				"data: \"hint\":\"or " + shape + "\"}}\n\n"},
		{"application/x-ndjson", "{\"model\":\"m\",\"response\":\"" + shape + "\",\"done\":false}\n",
			"{\"error\":\"key " + key + " is over quota, or " + shape + "\"}\n"},
	}
	for _, c := range cases {
		for _, k := range []int{1, 5, 64, 1 << 20} {
			for _, bufN := range []int{7, 4096} {
				req, _ := http.NewRequest(http.MethodPost, "https://model.example/v1/chat", nil)
				req.Header.Set("Authorization", "Api-Key "+key)
				resp := &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {c.ct}}, ContentLength: -1,
					Body: &chunkedBody{data: []byte(c.before + c.errEvent), k: k}, Request: req}
				sse.Guard(resp, sse.Config{})
				out, err := readAllBuf(resp.Body, bufN)
				var se *streamguard.Error
				if !errors.As(err, &se) || !errors.Is(err, sse.ErrInBand) {
					t.Fatalf("%s k=%d: verdict %v, want the in-band error", c.ct, k, err)
				}
				got := string(out)
				if len(got) != len(c.before+c.errEvent) || !strings.HasPrefix(got, c.before) {
					t.Fatalf("%s k=%d buf=%d: %q", c.ct, k, bufN, got)
				}
				rest := got[len(c.before):]
				if strings.Contains(rest, key[:8]) || strings.Contains(rest, shape[3:]) || !strings.Contains(rest, "REDACTED*") ||
					!strings.Contains(rest, "is over quota") {
					t.Errorf("%s k=%d buf=%d: the error passed on as %q", c.ct, k, bufN, rest)
				}
			}
		}
	}
}

func readAllBuf(r io.Reader, n int) ([]byte, error) {
	var out []byte
	buf := make([]byte, n)
	for range 1_000_000 {
		k, err := r.Read(buf)
		out = append(out, buf[:k]...)
		if err != nil {
			return out, err
		}
	}
	return out, errors.New("the body never ended")
}

// TestErrorEventMaskKeepsSyntax: a short credential value (a cookie's
// "true", "data") is not masked in the error event passed on: it could be
// the event's own syntax, a JSON literal or a field's name.
func TestErrorEventMaskKeepsSyntax(t *testing.T) {
	for _, c := range []struct{ cookie, body string }{
		{"consent=true", "event: error\ndata: {\"error\":{\"message\":\"over quota\",\"retryable\":true}}\n\n"},
		{"mode=data", "event: error\ndata: {\"error\":{\"message\":\"over quota\"}}\n\n"},
	} {
		req, _ := http.NewRequest(http.MethodPost, "https://model.example/v1/chat", nil)
		req.Header.Set("Cookie", c.cookie)
		resp := &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"text/event-stream"}}, ContentLength: -1,
			Body: &chunkedBody{data: []byte(c.body), k: 1 << 20}, Request: req}
		sse.Guard(resp, sse.Config{})
		out, err := io.ReadAll(resp.Body)
		if !errors.Is(err, sse.ErrInBand) || string(out) != c.body {
			t.Errorf("cookie %q: passed on as %q, %v", c.cookie, out, err)
		}
	}
}

// TestErrorEventMaskedHTMLSafe: a key with '=' padding that the server's
// HTML-safe JSON encoder (Gson's) echoed as "\u003d" in an error event is
// masked in the bytes passed on too: the consumer would decode it.
func TestErrorEventMaskedHTMLSafe(t *testing.T) {
	const key = "A1b2C3d4E5f6G7h8I9j0KLmn=="
	ev := "event: error\ndata: {\"error\":{\"message\":\"invalid key A1b2C3d4E5f6G7h8I9j0KLmn\\u003d\\u003d\"}}\n\n"
	req, _ := http.NewRequest(http.MethodPost, "https://model.example/v1/chat?key="+url.QueryEscape(key), nil)
	resp := &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"text/event-stream"}}, ContentLength: -1,
		Body: &chunkedBody{data: []byte("data: {}\n\n" + ev), k: 5}, Request: req}
	sse.Guard(resp, sse.Config{})
	out, err := readAllBuf(resp.Body, 4096)
	if !errors.Is(err, sse.ErrInBand) {
		t.Fatalf("verdict %v", err)
	}
	if s := string(out); strings.Contains(s, key[:20]) || !strings.Contains(s, "invalid key REDACTED") {
		t.Errorf("the error passed on as %q", s)
	}
}

// TestErrorEventMaskedGoEscaped: a key with '=' and '&' that Go's
// encoding/json echoed ('&' escaped, '=' not) is masked too.
func TestErrorEventMaskedGoEscaped(t *testing.T) {
	const key = "Abc0defghij0123456789=&x<y"
	msg, _ := json.Marshal(map[string]any{"error": map[string]string{"message": "invalid key " + key}})
	ev := "event: error\ndata: " + string(msg) + "\n\n"
	req, _ := http.NewRequest(http.MethodPost, "https://model.example/v1/chat?key="+url.QueryEscape(key), nil)
	resp := &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"text/event-stream"}}, ContentLength: -1,
		Body: &chunkedBody{data: []byte("data: {}\n\n" + ev), k: 5}, Request: req}
	sse.Guard(resp, sse.Config{})
	out, err := readAllBuf(resp.Body, 4096)
	if !errors.Is(err, sse.ErrInBand) {
		t.Fatalf("verdict %v", err)
	}
	if s := string(out); strings.Contains(s, "0123456789") {
		t.Errorf("the error passed on as %q", s)
	}
}
