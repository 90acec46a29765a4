package sse_test

import (
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/streamguard/streamguard"
	"github.com/streamguard/streamguard/sse"
)

// sized returns prefix + padding + suffix, padded to n bytes in all.
func sized(n int, prefix, suffix string) string {
	return prefix + strings.Repeat("x", n-len(prefix)-len(suffix)) + suffix
}

// readGuarded reads a guarded body through a buffer of bufN bytes and
// returns what came and the verdict's reason ("success" for none).
func readGuarded(t *testing.T, body io.Reader, bufN int) ([]byte, string) {
	t.Helper()
	var out []byte
	buf := make([]byte, bufN)
	for range 1_000_000 {
		n, err := body.Read(buf)
		out = append(out, buf[:n]...)
		var se *streamguard.Error
		switch {
		case err == io.EOF:
			return out, "success"
		case errors.As(err, &se):
			return out, string(se.Reason)
		case err != nil:
			t.Fatalf("read: %v", err)
		}
	}
	t.Fatal("the body never ended")
	return nil, ""
}

// TestMaxEventBytesPerEvent: an event (a JSON line, an array element) of
// more than MaxEventBytes fails the stream as event_too_large, after the
// events before it, and one of exactly MaxEventBytes passes, however the
// upstream's reads and the caller's buffer split the stream: an event
// that arrived whole in one large read used to pass, whatever its size.
func TestMaxEventBytesPerEvent(t *testing.T) {
	const max = 300
	gemini, _ := url.Parse("https://generativelanguage.example/v1beta/models/m:streamGenerateContent")
	type stream struct {
		name, ct string
		req      *http.Request
		before   string             // whole events ahead of the sized one
		event    func(n int) string // an event of n bytes
		after    string             // the rest of a complete stream
		eol      string
	}
	var streams []stream
	for _, eol := range []string{"\n", "\r\n", "\r"} {
		fix := func(s string) string { return strings.ReplaceAll(s, "\n", eol) }
		// The blank line that ends an event counts as one byte, a CRLF too.
		crlf := len(eol) - 1
		var before string
		for i := range 12 { // enough to put the guard on its fast path
			before += fix(chunk(i))
		}
		streams = append(streams,
			stream{name: "sse one line", ct: sseType, before: before, eol: eol, after: fix("data: [DONE]\n\n"),
				event: func(n int) string {
					return sized(n+crlf, `data: {"id":"chatcmpl-1","object":"chat.completion.chunk","choices":[{"delta":{"content":"`, fix("\"}}]}\n\n"))
				}},
			stream{name: "sse lines", ct: sseType, before: before, eol: eol, after: fix("data: [DONE]\n\n"),
				event: func(n int) string {
					return sized(n+crlf, fix(": note\nid: 7\ndata: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\ndata: \"choices\":[{\"delta\":{\"content\":\""), fix("\"}}]}\n\n"))
				}},
			stream{name: "sse comment", ct: sseType, before: before, eol: eol, after: fix("data: [DONE]\n\n"),
				event: func(n int) string { return sized(n+crlf, ": ", fix("\n\n")) }},
		)
	}
	streams = append(streams,
		stream{name: "json lines", ct: ndjson, before: ollamaLine(0) + ollamaLine(1), after: ollamaDone,
			event: func(n int) string {
				return sized(n, `{"model":"llama3.2","created_at":"2025-01-01T00:00:00Z","message":{"role":"assistant","content":"`, `"},"done":false}`+"\n")
			}},
		stream{name: "json array", ct: "application/json", req: &http.Request{Method: "POST", URL: gemini},
			before: "[" + geminiElem(0) + ",\n" + geminiElem(1) + ",\n", after: "]",
			event: func(n int) string {
				// The separator after the element is no part of it.
				return sized(n, `{"candidates":[{"content":{"parts":[{"text":"`, `"}],"role":"model"}}]}`) + ",\n"
			}},
	)
	runs := 0
	for _, s := range streams {
		for _, size := range []int{max - 1, max, max + 1, 3 * max} {
			ev := s.event(size)
			data := s.before + ev + s.after
			wantReason, want := "success", data
			if size > max {
				wantReason, want = "event_too_large", s.before
			}
			for _, k := range []int{1, 7, 150, max - 1, max, max + 1, 4096, 1 << 20} {
				for _, bufN := range []int{1, 200, 512, 32 << 10} {
					resp := &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {s.ct}}, ContentLength: -1,
						Body: &chunkedBody{data: []byte(data), k: k}, Request: s.req}
					sse.Guard(resp, sse.Config{MaxEventBytes: max})
					got, reason := readGuarded(t, resp.Body, bufN)
					runs++
					if reason != wantReason || string(got) != want {
						t.Errorf("%s %q, event of %d bytes, reads of %d into %d: %s after %d bytes, want %s after %d",
							s.name, s.eol, size, k, bufN, reason, len(got), wantReason, len(want))
					}
				}
			}
		}
	}
	if runs < 400 {
		t.Fatalf("only %d runs", runs)
	}
}

// eofBody gives its data k bytes per Read, with io.EOF on the last bytes'
// Read when withData, on a Read of its own otherwise.
type eofBody struct {
	data     []byte
	k        int
	withData bool
}

func (e *eofBody) Read(p []byte) (int, error) {
	if len(e.data) == 0 {
		return 0, io.EOF
	}
	n := copy(p, e.data[:min(len(e.data), e.k)])
	e.data = e.data[n:]
	if len(e.data) == 0 && e.withData {
		return n, io.EOF
	}
	return n, nil
}

func (e *eofBody) Close() error { return nil }

// TestMaxEventBytesAtTheEnd: a stream that ends inside an event, or in a
// last JSON record without its line end, of exactly MaxEventBytes bytes
// gets the same verdict whether the end comes with the last bytes or on a
// read of its own: as many bytes as the cap, with more to come, prove
// nothing (a stream cut there is truncated; a last record without its LF
// is whole).
func TestMaxEventBytesAtTheEnd(t *testing.T) {
	const max = 64
	for _, tc := range []struct {
		ct, data, want string
	}{
		{sseType, "data: 1\n\n" + sized(max, "data: ", ""), "truncated"},
		{sseType, "data: 1\n\n" + sized(max+1, "data: ", ""), "event_too_large"},
		{"application/jsonl", "{}\n" + sized(max, `{"k":"`, `"}`), "success"},
		{"application/jsonl", "{}\n" + sized(max+1, `{"k":"`, `"}`), "event_too_large"},
	} {
		for k := 1; k <= len(tc.data); k++ {
			for _, withData := range []bool{false, true} {
				resp := &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {tc.ct}}, ContentLength: -1,
					Body: &eofBody{data: []byte(tc.data), k: k, withData: withData}}
				sse.Guard(resp, sse.Config{MaxEventBytes: max})
				if _, reason := readGuarded(t, resp.Body, 32<<10); reason != tc.want {
					t.Errorf("%s of %d bytes, reads of %d, EOF with the data %v: %s, want %s", tc.ct, len(tc.data), k, withData, reason, tc.want)
				}
			}
		}
	}
}

// TestMaxEventBytesAfterBOM: the byte-order mark a stream may start with
// is no part of its first event (or record): an event of exactly
// MaxEventBytes after it passes, one byte more fails, in one read or in
// small ones. In a JSON text sequence, the RS that begins the next record
// is no part of the one before it, which it cuts short.
func TestMaxEventBytesAfterBOM(t *testing.T) {
	const max = 64
	const bom = "\xef\xbb\xbf"
	cases := []struct {
		name, ct string
		event    func(n int) string // the sized event, of n bytes
		after    string
	}{
		{"sse", sseType, func(n int) string { return sized(n, "data: ", "\n\n") }, "data: [DONE]\n\n"},
		{"ndjson", ndjson, func(n int) string { return sized(n, `{"a":"`, "\"}\n") }, "{}\n"},
		{"json-seq", "application/json-seq", func(n int) string { return sized(n, "\x1e{\"a\":\"", "\"}\n") }, "\x1e{}\n"},
	}
	for _, c := range cases {
		for _, n := range []int{max, max + 1} {
			for _, step := range []int{1, 7, 1 << 20} {
				body := bom + c.event(n) + c.after
				var chunks []string
				for i := 0; i < len(body); i += step {
					chunks = append(chunks, body[i:min(i+step, len(body))])
				}
				_, reason := readGuarded(t, guarded(c.ct, nil, sse.Config{MaxEventBytes: max}, chunks...).Body, 4096)
				want := "success"
				if n > max {
					want = string(streamguard.ReasonEventTooLarge)
				}
				if reason != want {
					t.Errorf("%s, an event of %d after a BOM, reads of %d: %s, want %s", c.name, n, step, reason, want)
				}
			}
		}
	}
	// A record cut short by the next record's RS: its own bytes count.
	for _, n := range []int{max, max + 1} {
		rec := sized(n, "\x1e{\"a\":\"", "")
		for _, step := range []int{1, 1 << 20} {
			body := rec + "\x1e{}\n"
			var chunks []string
			for i := 0; i < len(body); i += step {
				chunks = append(chunks, body[i:min(i+step, len(body))])
			}
			_, reason := readGuarded(t, guarded("application/json-seq", nil, sse.Config{MaxEventBytes: max}, chunks...).Body, 4096)
			if tooLarge := reason == string(streamguard.ReasonEventTooLarge); tooLarge != (n > max) {
				t.Errorf("json-seq, a record of %d cut by an RS, reads of %d: %s", n, step, reason)
			}
		}
	}
}
