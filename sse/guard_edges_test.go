package sse_test

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/streamguard/streamguard"
	"github.com/streamguard/streamguard/sse"
)

// chunkedBody gives its data k bytes per Read.
type chunkedBody struct {
	data []byte
	k    int
}

func (s *chunkedBody) Read(p []byte) (int, error) {
	if len(s.data) == 0 {
		return 0, io.EOF
	}
	n := min(len(p), s.k, len(s.data))
	copy(p, s.data[:n])
	s.data = s.data[n:]
	return n, nil
}

func (s *chunkedBody) Close() error { return nil }

// guardRead guards an event stream of data, read from upstream k bytes at a
// time through a buffer of bufN bytes, and returns what the reader got and
// the verdict's reason ("success" for none).
func guardRead(t *testing.T, cfg sse.Config, req *http.Request, data string, k, bufN int) ([]byte, string, error) {
	t.Helper()
	resp := &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"text/event-stream"}}, ContentLength: -1,
		Body: &chunkedBody{data: []byte(data), k: k}, Request: req}
	sse.Guard(resp, cfg)
	var out []byte
	buf := make([]byte, bufN)
	for range 1_000_000 {
		n, err := resp.Body.Read(buf)
		out = append(out, buf[:n]...)
		var se *streamguard.Error
		switch {
		case err == io.EOF:
			return out, "success", nil
		case errors.As(err, &se):
			return out, string(se.Reason), err
		case err != nil:
			t.Fatalf("read: %v", err)
		}
	}
	t.Fatal("the body never ended")
	return nil, "", nil
}

// TestGuardBOMMultiLineError: an error event whose data spans lines, first
// in a stream that starts with a BOM, is the stream's error, at every
// split of the upstream's reads.
func TestGuardBOMMultiLineError(t *testing.T) {
	d := "\xef\xbb\xbfdata: {\"error\":\ndata: {\"message\":\"boom\"}}\n\n"
	for _, k := range []int{1, 3, 7, 1 << 20} {
		if _, reason, _ := guardRead(t, sse.Config{}, nil, d, k, 4096); reason != "model_error" {
			t.Errorf("reads of %d bytes: %s, want model_error", k, reason)
		}
	}
}

// TestGuardErrorEventKeyAtCut: no part of the request's key survives in
// an in-band error whose message the 512-byte cut would split the key of:
// not in the error, nor in the failure frame.
func TestGuardErrorEventKeyAtCut(t *testing.T) {
	const key = "bt0x9QzLmN4pR7sT2vW5yA8cE1gH3jK6" // no known shape: only the request has it
	req, _ := http.NewRequest(http.MethodPost, "https://model.example/v1/chat/completions", nil)
	req.Header.Set("Authorization", "Api-Key "+key)
	msg := strings.Repeat("a", 490) + " " + key + " was rejected"
	out, _, err := guardRead(t, sse.Config{FailureEvent: true}, req, `data: {"error":{"message":"`+msg+`","code":"`+key+`"}}`+"\n\n", 1<<20, 4096)
	var se *streamguard.Error
	if !errors.As(err, &se) {
		t.Fatalf("verdict %v, want the error event's", err)
	}
	frame := string(out[strings.Index(string(out), "\n\n")+2:])
	for _, s := range []string{se.Message, se.Code, se.Error(), frame} {
		if strings.Contains(s, key[:8]) {
			t.Errorf("a part of the key survives: ...%s", s[max(0, len(s)-60):])
		}
	}
}

// TestGuardIdleTimerSetBeforeItFires: a timer that fires at once finds
// itself set (run under -race).
func TestGuardIdleTimerSetBeforeItFires(t *testing.T) {
	for range 200 {
		resp := &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"text/event-stream"}},
			Body: io.NopCloser(strings.NewReader("data: [DONE]\n\n"))}
		sse.Guard(resp, sse.Config{IdleTimeout: time.Nanosecond, FirstByteTimeout: -1})
		time.Sleep(time.Microsecond)
		resp.Body.Close()
	}
}

// TestGuardDialectNotFooledByText: a stream of no known dialect whose text
// names OpenAI's object is not taken for an OpenAI stream (whose clean end
// without [DONE] would be a truncation); one that has the object is.
func TestGuardDialectNotFooledByText(t *testing.T) {
	custom := "data: {\"text\":\"the object is \\\"chat.completion.chunk\\\"\"}\n\n"
	if _, reason, _ := guardRead(t, sse.Config{}, nil, custom, 1<<20, 4096); reason != "success" {
		t.Errorf("a custom stream that names the object: %s, want success", reason)
	}
	openai := "data: {\"id\":\"c1\",\"object\": \"chat.completion.chunk\",\"choices\":[]}\n\n"
	if _, reason, _ := guardRead(t, sse.Config{}, nil, openai, 1<<20, 4096); reason != "truncated" {
		t.Errorf("an OpenAI stream without [DONE]: %s, want truncated", reason)
	}
}

// TestGuardNoEventsQuoteScrubbed: the start of a body without events that
// the no_events verdict quotes holds neither the request's key (no known
// shape: only the request has it) nor its start where the quote cut it.
func TestGuardNoEventsQuoteScrubbed(t *testing.T) {
	for _, key := range []string{"9f8e7d6c5b4a39281706f5e4", "bt0x9QzLmN4pR7sT2vW5yA8cE1gH3jK6", "x9QzLm4pR7sT"} {
		for _, ct := range []string{"text/event-stream", "application/x-ndjson"} {
			req, _ := http.NewRequest(http.MethodPost, "https://model.example/api/chat", nil)
			req.Header.Set("Authorization", "Bearer "+key)
			resp := &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {ct}}, ContentLength: -1,
				Body: &chunkedBody{data: []byte("bad " + key + " is not a valid key"), k: 3}, Request: req}
			sse.Guard(resp, sse.Config{})
			_, err := io.ReadAll(resp.Body)
			var se *streamguard.Error
			if !errors.As(err, &se) || se.Reason != streamguard.ReasonNoEvents {
				t.Fatalf("%s: verdict %v, want no_events", ct, err)
			}
			if strings.Contains(se.Error(), key[:8]) || !strings.Contains(se.Message, `"bad`) {
				t.Errorf("%s, key of %d bytes: %s", ct, len(key), se.Message)
			}
		}
	}
	// A password holds bytes no token has: its start where the quote cut
	// it is dropped all the same.
	req, _ := http.NewRequest(http.MethodPost, "https://user:Xk9$Qz7!longpassword@api.example/v1/chat", nil)
	resp := &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"text/event-stream"}}, ContentLength: -1,
		Body: &chunkedBody{data: []byte("bad login Xk9$Qz7!longpassword for user"), k: 3}, Request: req}
	sse.Guard(resp, sse.Config{})
	_, err := io.ReadAll(resp.Body)
	var se *streamguard.Error
	if !errors.As(err, &se) || se.Reason != streamguard.ReasonNoEvents || strings.Contains(se.Error(), "Xk9") || !strings.Contains(se.Message, `"bad login`) {
		t.Errorf("a password cut by the quote: %v", err)
	}
}

// TestInBandEscapedKey: an in-stream error echoing the request's key
// JSON-escaped (\u006b for 'k') does not carry it into the verdict: the
// decoded message is scrubbed too.
func TestInBandEscapedKey(t *testing.T) {
	const key = "Zq8x7Lm2Np4Rt6Vw9Yb1Qs3Ue5Hk"
	req, _ := http.NewRequest(http.MethodPost, "https://model.example/v1/chat/completions", nil)
	req.Header.Set("Authorization", "Api-Key "+key)
	data := `data: {"error":{"message":"bad key ` + key[:27] + `\u006b","type":"invalid_request_error"}}` + "\n\n"
	resp := &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"text/event-stream"}}, ContentLength: -1,
		Body: &chunkedBody{data: []byte(data), k: 7}, Request: req}
	sse.Guard(resp, sse.Config{})
	_, err := io.ReadAll(resp.Body)
	var se *streamguard.Error
	if !errors.As(err, &se) || strings.Contains(se.Error(), key[:10]) || !strings.Contains(se.Message, "bad key") {
		t.Fatalf("verdict %v", err)
	}
}
