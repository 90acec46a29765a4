package sse_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math"
	"net/http"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/streamguard/streamguard"
	"github.com/streamguard/streamguard/sse"
	gosse "github.com/tmaxmax/go-sse"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// chunkBody returns its chunks one Read at a time, then end (io.EOF when nil).
type chunkBody struct {
	chunks []string
	end    error
	closed bool
}

func (c *chunkBody) Read(p []byte) (int, error) {
	if len(c.chunks) == 0 {
		if c.end == nil {
			return 0, io.EOF
		}
		return 0, c.end
	}
	n := copy(p, c.chunks[0])
	if n < len(c.chunks[0]) {
		c.chunks[0] = c.chunks[0][n:]
	} else {
		c.chunks = c.chunks[1:]
	}
	return n, nil
}

func (c *chunkBody) Close() error { c.closed = true; return nil }

func guarded(ct string, end error, cfg sse.Config, chunks ...string) *http.Response {
	resp := &http.Response{
		StatusCode: 200,
		Header:     http.Header{"Content-Type": {ct}, "X-Baseten-Request-Id": {"req-1"}},
		Body:       &chunkBody{chunks: chunks, end: end},
	}
	sse.Guard(resp, cfg)
	return resp
}

const sseType = "text/event-stream"

func chunk(i int) string {
	return `data: {"id":"chatcmpl-1","object":"chat.completion.chunk","choices":[{"delta":{"content":"t` + string(rune('a'+i)) + `"}}]}` + "\n\n"
}

// verdictCase is one way a stream can end, with what the guard must say.
type verdictCase struct {
	name    string
	chunks  []string
	end     error // the upstream's error after the chunks; nil: clean EOF
	ct      string
	cfg     sse.Config
	reason  streamguard.Reason // "" means success
	source  streamguard.Source
	cause   error // errors.Is(err, cause), when set
	events  int64
	deliver string // exactly the bytes the reader must get before the verdict; "" means not checked
}

var verdictCases = []verdictCase{
	{name: "openai complete", chunks: []string{chunk(0), chunk(1), "data: [DONE]\n\n"}, events: 3},
	{name: "openai ends cleanly without [DONE]", chunks: []string{chunk(0), chunk(1)},
		reason: "truncated", source: "platform", cause: sse.ErrNoTerminal, events: 2},
	{name: "clean EOF mid-event", chunks: []string{chunk(0), "data: {\"partial"},
		reason: "truncated", source: "platform", cause: sse.ErrPartialEvent, events: 1, deliver: chunk(0)},
	{name: "clean EOF mid-line after complete line", chunks: []string{chunk(0), "data: [DONE]\n"},
		reason: "truncated", source: "platform", cause: sse.ErrPartialEvent, events: 1, deliver: chunk(0)},
	{name: "unexpected EOF mid-event", chunks: []string{chunk(0), "data: {\"par"}, end: io.ErrUnexpectedEOF,
		reason: "truncated", source: "network", cause: io.ErrUnexpectedEOF, events: 1, deliver: chunk(0)},
	{name: "unexpected EOF at boundary", chunks: []string{chunk(0)}, end: io.ErrUnexpectedEOF,
		reason: "truncated", source: "network", cause: io.ErrUnexpectedEOF, events: 1},
	{name: "reset after terminal is success", chunks: []string{chunk(0), "data: [DONE]\n\n"}, end: io.ErrUnexpectedEOF, events: 2},
	{name: "unknown dialect clean EOF", chunks: []string{"data: hello\n\n", "data: world\n\n"}, events: 2},
	{name: "unknown dialect cut", chunks: []string{"data: hello\n\n"}, end: io.ErrUnexpectedEOF,
		reason: "truncated", source: "network", events: 1},
	{name: "vllm error then DONE", chunks: []string{chunk(0), `data: {"error": {"object": "error", "message": "CUDA out of memory", "type": "InternalServerError", "code": 500}}` + "\n\n", "data: [DONE]\n\n"},
		reason: "model_error", source: "model", cause: sse.ErrInBand, events: 3},
	{name: "old vllm error object", chunks: []string{`data: {"object":"error","message":"boom","type":"BadRequestError","code":400}` + "\n\n", "data: [DONE]\n\n"},
		reason: "model_error", source: "model", events: 2},
	{name: "tgi error string then DONE", chunks: []string{chunk(0), `data: {"error":"Request failed during generation","error_type":"generation"}` + "\n\n", "data: [DONE]\n\n"},
		reason: "model_error", source: "model", events: 3},
	{name: "anthropic complete", chunks: []string{
		"event: message_start\ndata: {\"type\":\"message_start\"}\n\n",
		"event: ping\ndata: {\"type\": \"ping\"}\n\n",
		"event: content_block_delta\ndata: {\"type\":\"content_block_delta\"}\n\n",
		"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"}, events: 4},
	{name: "anthropic without message_stop", chunks: []string{
		"event: message_start\ndata: {\"type\":\"message_start\"}\n\n",
		"event: content_block_delta\ndata: {\"type\":\"content_block_delta\"}\n\n"},
		reason: "truncated", source: "platform", cause: sse.ErrNoTerminal, events: 2},
	{name: "anthropic overloaded error event", chunks: []string{
		"event: message_start\ndata: {\"type\":\"message_start\"}\n\n",
		"event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n"},
		reason: "unavailable", source: "platform", events: 2},
	{name: "responses completed", chunks: []string{
		"event: response.created\ndata: {\"type\":\"response.created\"}\n\n",
		"event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"delta\":\"x\"}\n\n",
		"event: response.completed\ndata: {\"type\":\"response.completed\"}\n\n"}, events: 3},
	{name: "responses incomplete is an end", chunks: []string{
		"event: response.created\ndata: {\"type\":\"response.created\"}\n\n",
		"event: response.incomplete\ndata: {\"type\":\"response.incomplete\"}\n\n"}, events: 2},
	{name: "responses without event lines", chunks: []string{
		"data: {\"type\":\"response.created\"}\n\n",
		"data: {\"type\":\"response.output_text.delta\"}\n\n"},
		reason: "truncated", source: "platform", cause: sse.ErrNoTerminal, events: 2},
	{name: "responses failed", chunks: []string{
		"event: response.created\ndata: {\"type\":\"response.created\"}\n\n",
		"event: response.failed\ndata: {\"type\":\"response.failed\",\"response\":{\"error\":{\"code\":\"server_error\",\"message\":\"model crashed\"}}}\n\n"},
		reason: "model_error", source: "model", events: 2},
	{name: "responses error event", chunks: []string{
		"event: response.created\ndata: {\"type\":\"response.created\"}\n\n",
		"event: error\ndata: {\"type\":\"error\",\"code\":\"rate_limit_exceeded\",\"message\":\"slow down\"}\n\n"},
		reason: "rate_limited", source: "platform", events: 2},
	{name: "CRLF stream", chunks: []string{strings.ReplaceAll(chunk(0), "\n", "\r\n"), "data: [DONE]\r\n\r\n"}, events: 2},
	{name: "lone CR stream", chunks: []string{strings.ReplaceAll(chunk(0), "\n", "\r"), "data: [DONE]\r\r"}, events: 2},
	{name: "CR split across reads", chunks: []string{"data: a\r", "\n\r", "\ndata: [DONE]\r", "\n\r", "\n"}, events: 2},
	{name: "lone CR split: CR ends the event", chunks: []string{"data: a\r\r", "data: [DONE]\r\r"}, events: 2},
	{name: "lone CR event inside an LF line at the end", chunks: []string{"data: a\r\rdata: b\n"},
		reason: "truncated", source: "platform", cause: sse.ErrPartialEvent, events: 1, deliver: "data: a\r\r"},
	{name: "lone CR split event delivered whole with its LF boundary", chunks: []string{"data: a\r\rdata: b\n\n"}, events: 1},
	{name: "CRLF from the first line", chunks: []string{"data: x\r\n", "\r\ndata: [DONE]\r\n\r\n"}, events: 2},
	{name: "BOM then lone CRs at the end", chunks: []string{"\xef\xbb\xbfdata: a\r\rdata: b\n"},
		reason: "truncated", source: "platform", cause: sse.ErrPartialEvent, events: 1, deliver: "\xef\xbb\xbfdata: a\r\r"},
	{name: "leading BOM", chunks: []string{"\xef\xbb", "\xbfdata: [DONE]\n\n"}, events: 1},
	{name: "comments and retry lines", chunks: []string{": keep-alive\n\n", "retry: 100\n: x\ndata: [DONE]\n\n"}, events: 1},
	{name: "comment-only tail after the terminal is dropped", chunks: []string{"data: [DONE]\n\n", ": ping\n"}, events: 1, deliver: "data: [DONE]\n\n"},
	{name: "comment-only tail is a partial event", chunks: []string{"data: x\n\n", ": ping\n"}, events: 1, deliver: "data: x\n\n",
		reason: "truncated", source: "platform", cause: sse.ErrPartialEvent},
	{name: "MaxEventBytes as large as an int", chunks: []string{"data: " + strings.Repeat("x", 5000) + "\n\n", "data: [DONE]\n\n"},
		cfg: sse.Config{MaxEventBytes: math.MaxInt}, events: 2},
	{name: "one byte at a time", chunks: strings.Split(chunk(0)+"data: [DONE]\n\n", ""), events: 2},
	{name: "event over MaxEventBytes", chunks: []string{chunk(0), "data: " + strings.Repeat("x", 200)}, cfg: sse.Config{MaxEventBytes: 150},
		reason: "event_too_large", source: "model", cause: sse.ErrEventTooLarge, events: 1, deliver: chunk(0)},
	{name: "endless line stops at MaxEventBytes", chunks: []string{strings.Repeat("x", 10), strings.Repeat("y", 100), strings.Repeat("z", 1000)},
		cfg: sse.Config{MaxEventBytes: 500}, reason: "event_too_large", cause: sse.ErrEventTooLarge, source: "model"},
	{name: "error null is no error", chunks: []string{`data: {"error":null,"token":1}` + "\n\n", `data: {"error": "", "token":2}` + "\n\n"}, events: 2},
	{name: "unknown dialect, a late error event", chunks: append(repeat("data: {\"token\":1}\n\n", 20), "data: {\"error\":\"boom\"}\n\n"),
		reason: "model_error", source: "model", events: 21},
	{name: "unknown dialect, a late [DONE] then a cut", chunks: append(repeat("data: {\"token\":1}\n\n", 20), "data: [DONE]\n\n"),
		end: io.ErrUnexpectedEOF, events: 21},
	{name: "raw octet stream complete", ct: "application/octet-stream", chunks: []string{"abc", "def"}},
	{name: "raw octet stream cut", ct: "application/octet-stream", chunks: []string{"abc"}, end: io.ErrUnexpectedEOF,
		reason: "truncated", source: "network", deliver: "abc"},
	{name: "custom dialect terminal", chunks: []string{"data: tok\n\n", "data: END\n\n"}, events: 2,
		cfg: sse.Config{Dialects: []sse.Dialect{endDialect}}},
	{name: "custom dialect missing terminal", chunks: []string{"data: tok\n\n"}, events: 1,
		cfg: sse.Config{Dialects: []sse.Dialect{endDialect}}, reason: "truncated", cause: sse.ErrNoTerminal, source: "platform"},
	{name: "custom dialects replace the built-ins", chunks: []string{chunk(0)}, events: 1,
		cfg: sse.Config{Dialects: []sse.Dialect{endDialect}}},
	{name: "built-ins plus custom", chunks: []string{chunk(0), "data: [DONE]\n\n"}, events: 2,
		cfg: sse.Config{Dialects: append(sse.DefaultDialects(), endDialect)}},
	{name: "built-ins by predicate", chunks: []string{chunk(0), `data: {"error":"x"}` + "\n\n", "data: [DONE]\n\n"}, events: 3,
		cfg: sse.Config{Dialects: sse.DefaultDialects()}, reason: "model_error", source: "model"},
}

func repeat(s string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = s
	}
	return out
}

// endDialect is a user's dialect whose streams end with "data: END".
var endDialect = sse.Dialect{
	Name:     "end",
	Detect:   func(_, data []byte) bool { return bytes.Equal(data, []byte("tok")) },
	Terminal: func(_, data []byte) bool { return bytes.Equal(data, []byte("END")) },
}

func TestVerdicts(t *testing.T) {
	for _, c := range verdictCases {
		t.Run(c.name, func(t *testing.T) {
			ct := c.ct
			if ct == "" {
				ct = sseType
			}
			resp := guarded(ct, c.end, c.cfg, append([]string(nil), c.chunks...)...)
			got, err := io.ReadAll(resp.Body)
			if c.reason == "" {
				if err != nil {
					t.Fatalf("err = %v, want success", err)
				}
				want := c.deliver
				if want == "" {
					want = strings.Join(c.chunks, "")
				}
				if string(got) != want {
					t.Errorf("delivered %q, want %q", got, want)
				}
				return
			}
			var se *streamguard.Error
			if !errors.As(err, &se) {
				t.Fatalf("err = %v (%T), want *streamguard.Error", err, err)
			}
			if se.Reason != c.reason || se.Source != c.source {
				t.Errorf("verdict %s/%s, want %s/%s (%v)", se.Source, se.Reason, c.source, c.reason, se)
			}
			if c.cause != nil && !errors.Is(err, c.cause) {
				t.Errorf("cause %v, want %v", se.Err, c.cause)
			}
			if c.ct == "" && se.Events != c.events {
				t.Errorf("Events = %d, want %d", se.Events, c.events)
			}
			if se.Bytes != int64(len(got)) || se.StatusCode != 200 || se.RequestID != "req-1" {
				t.Errorf("Bytes %d (read %d), status %d, request ID %q", se.Bytes, len(got), se.StatusCode, se.RequestID)
			}
			if c.deliver != "" && string(got) != c.deliver {
				t.Errorf("delivered %q, want %q", got, c.deliver)
			}
			// The verdict is sticky.
			if _, again := resp.Body.Read(make([]byte, 8)); again != err {
				t.Errorf("second Read = %v, want the same verdict", again)
			}
		})
	}
}

// Whole events only: no Read ever ends inside an event.
func TestDeliversWholeEventsOnly(t *testing.T) {
	stream := chunk(0) + "event: x\ndata: a\ndata: b\n\n" + chunk(1) + "data: [DONE]\n\n"
	for split := 1; split < len(stream); split += 7 {
		var chunks []string
		for i := 0; i < len(stream); i += split {
			chunks = append(chunks, stream[i:min(i+split, len(stream))])
		}
		resp := guarded(sseType, nil, sse.Config{}, chunks...)
		var got []byte
		buf := make([]byte, 4096)
		for {
			n, err := resp.Body.Read(buf)
			got = append(got, buf[:n]...)
			if n > 0 && !bytes.HasSuffix(got, []byte("\n\n")) {
				t.Fatalf("split %d: a Read ended inside an event: %q", split, got)
			}
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("split %d: %v", split, err)
			}
		}
		if string(got) != stream {
			t.Fatalf("split %d: got %q", split, got)
		}
	}
}

func TestLastEventID(t *testing.T) {
	resp := guarded(sseType, io.ErrUnexpectedEOF, sse.Config{},
		"id: 1\ndata: a\n\n", "id: 2\ndata: b\n\n", "id: 3\ndata: partial")
	_, err := io.ReadAll(resp.Body)
	var se *streamguard.Error
	if !errors.As(err, &se) || se.LastEventID != "2" || se.Events != 2 {
		t.Fatalf("LastEventID %q, Events %d (%v); want the last dispatched id 2", se.LastEventID, se.Events, err)
	}
}

func TestFailureEvent(t *testing.T) {
	evil := "boom\n\nevent: injected\ndata: {\"x\":1}\r\nid: 9\n\n"
	resp := guarded(sseType, errors.New(evil), sse.Config{FailureEvent: true}, chunk(0), "data: {\"half")
	var events []gosse.Event
	var readErr error
	for ev, err := range gosse.Read(resp.Body, nil) {
		if err != nil {
			readErr = err
			break
		}
		events = append(events, ev)
	}
	var se *streamguard.Error
	if !errors.As(readErr, &se) || se.Reason != streamguard.ReasonTruncated {
		t.Fatalf("err = %v", readErr)
	}
	if len(events) != 2 || events[1].Type != "error" || events[1].LastEventID != "" {
		t.Fatalf("events = %+v, want the chunk and one error event", events)
	}
	if !strings.Contains(events[1].Data, `"reason":"truncated"`) || !strings.Contains(events[1].Data, `"source":"network"`) {
		t.Errorf("failure data = %s", events[1].Data)
	}
	if strings.ContainsAny(events[1].Data, "\r\n") {
		t.Errorf("failure data spans lines: %q", events[1].Data)
	}
}

func TestCloseIsIdempotentAndConcurrent(t *testing.T) {
	pr, pw := io.Pipe()
	resp := &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {sseType}}, Body: pr}
	sse.Guard(resp, sse.Config{})
	go pw.Write([]byte(chunk(0)))
	buf := make([]byte, 1024)
	if n, err := resp.Body.Read(buf); err != nil || n != len(chunk(0)) {
		t.Fatalf("Read = %d, %v", n, err)
	}
	done := make(chan error)
	go func() {
		_, err := resp.Body.Read(buf)
		done <- err
	}()
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() { resp.Body.Close() })
	}
	wg.Wait()
	err := <-done
	var se *streamguard.Error
	if !errors.As(err, &se) || se.Reason != streamguard.ReasonCanceled || se.Source != streamguard.SourceClient {
		t.Fatalf("Read after Close = %v", err)
	}
	if err := resp.Body.Close(); err != nil {
		t.Fatalf("second Close = %v", err)
	}
}

func TestGuardLeavesOthersAlone(t *testing.T) {
	for _, resp := range []*http.Response{
		{StatusCode: 503, Body: io.NopCloser(strings.NewReader("x"))},
		{StatusCode: 204, Body: http.NoBody},
		{StatusCode: 200},
	} {
		before := resp.Body
		sse.Guard(resp, sse.Config{})
		if resp.Body != before {
			t.Errorf("status %d: body replaced", resp.StatusCode)
		}
	}
	sse.Guard(nil, sse.Config{})
	resp := guarded(sseType, nil, sse.Config{}, "data: x\n\n")
	once := resp.Body
	sse.Guard(resp, sse.Config{})
	if resp.Body != once {
		t.Error("a guarded body was guarded twice")
	}
}

func TestIdleTimeoutInMemory(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		pr, pw := io.Pipe()
		defer pw.Close()
		resp := &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {sseType}}, Body: pr}
		sse.Guard(resp, sse.Config{IdleTimeout: 20 * time.Millisecond})
		go pw.Write([]byte(chunk(0)))
		start := time.Now()
		got, err := io.ReadAll(resp.Body)
		var se *streamguard.Error
		if !errors.As(err, &se) || se.Reason != streamguard.ReasonStalled || !errors.Is(err, sse.ErrIdleTimeout) {
			t.Fatalf("err = %v", err)
		}
		if string(got) != chunk(0) || se.Events != 1 {
			t.Errorf("got %q, events %d", got, se.Events)
		}
		if took := time.Since(start); took != 20*time.Millisecond {
			t.Errorf("stalled after %v, want 20ms", took)
		}
	})
}

// The reader's own pauses never count as idle.
func TestIdleTimeoutIgnoresSlowReader(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		resp := guarded(sseType, nil, sse.Config{IdleTimeout: 5 * time.Millisecond}, chunk(0), "data: [DONE]\n\n")
		buf := make([]byte, 4096)
		if _, err := resp.Body.Read(buf); err != nil {
			t.Fatal(err)
		}
		time.Sleep(30 * time.Millisecond) // the reader is busy: several idle periods pass
		if _, err := io.ReadAll(resp.Body); err != nil {
			t.Fatalf("a slow reader was judged stalled: %v", err)
		}
	})
}

func TestCanceledContext(t *testing.T) {
	ctx, cancel := context.WithCancelCause(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://x", nil)
	body := &chunkBody{chunks: []string{chunk(0)}, end: context.Canceled}
	resp := &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {sseType}}, Body: body, Request: req}
	sse.Guard(resp, sse.Config{})
	cancel(errors.New("user pressed stop"))
	_, err := io.ReadAll(resp.Body)
	var se *streamguard.Error
	if !errors.As(err, &se) || se.Reason != streamguard.ReasonCanceled || se.Source != streamguard.SourceClient {
		t.Fatalf("err = %v", err)
	}
	// The budget's expiry is the platform's timeout, not the client's.
	ctx2, cancel2 := context.WithCancelCause(context.Background())
	req2, _ := http.NewRequestWithContext(ctx2, "GET", "http://x", nil)
	resp2 := &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {sseType}},
		Body: &chunkBody{chunks: []string{chunk(0)}, end: context.Canceled}, Request: req2}
	sse.Guard(resp2, sse.Config{})
	cancel2(streamguard.ErrBudgetExceeded)
	_, err = io.ReadAll(resp2.Body)
	if !errors.As(err, &se) || se.Reason != streamguard.ReasonTimeout || se.Source != streamguard.SourcePlatform {
		t.Fatalf("budget err = %v", err)
	}
}

func TestAppendFailureFrameInjection(t *testing.T) {
	for _, msg := range []string{
		"a\nb", "a\rb", "a\r\nb", "\n\nevent: x\n\ndata: y\n\n", "a\u2028b\u0085c", "\x00\x1b", `"},"source":"forged`,
	} {
		frame := sse.AppendFailureFrame(nil, &streamguard.Error{Source: "model", Reason: "model_error", Message: msg, Code: msg, RequestID: msg})
		assertOneFailureEvent(t, frame)
	}
}

// assertOneFailureEvent checks that frame is exactly one event, of type
// error, with only the fields data (first, an {"error": {...}} object, as
// go-openai needs) and event.
func assertOneFailureEvent(t *testing.T, frame []byte) {
	t.Helper()
	if !bytes.HasPrefix(frame, []byte("data: {\"error\":{")) || !bytes.HasSuffix(frame, []byte("\nevent: error\n\n")) {
		t.Fatalf("frame %q", frame)
	}
	body := frame[:len(frame)-2]
	if bytes.Count(body, []byte("\n")) != 1 || bytes.ContainsAny(body, "\r") {
		t.Fatalf("frame has extra lines: %q", frame)
	}
	var n int
	for ev, err := range gosse.Read(bytes.NewReader(frame), nil) {
		if err != nil {
			t.Fatal(err)
		}
		n++
		if ev.Type != "error" || ev.LastEventID != "" {
			t.Fatalf("event %+v", ev)
		}
	}
	if n != 1 {
		t.Fatalf("%d events in %q", n, frame)
	}
}

// The guard follows event framing for text/event-stream in any spelling, and
// for nothing else.
func TestEventStreamContentTypes(t *testing.T) {
	for ct, isSSE := range map[string]bool{
		"text/event-stream":                 true,
		"Text/Event-Stream; charset=utf-8":  true,
		" text/event-stream ;charset=utf-8": true,
		"text/event-streamx":                false,
		"text/event":                        false,
		"application/octet-stream":          false,
		"":                                  false,
	} {
		// A partial event at a clean end is truncated only when framed.
		resp := guarded(ct, nil, sse.Config{}, "data: x\n\n", "data: part")
		_, err := io.ReadAll(resp.Body)
		if got := err != nil; got != isSSE {
			t.Errorf("%q: framed = %v (err %v), want %v", ct, got, err, isSSE)
		}
	}
}
