package sse_test

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/streamguard/streamguard"
	"github.com/streamguard/streamguard/internal/streamstat"
	"github.com/streamguard/streamguard/sse"
)

// verdictOf reads a stream of the given events through the guard and
// returns what it decided: the reason (or "ok"), the error's code and
// message, and the dialect detected.
func verdictOf(cfg sse.Config, stream string) string {
	resp := &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {sseType}},
		Body: io.NopCloser(strings.NewReader(stream))}
	sse.Guard(resp, cfg)
	_, err := io.ReadAll(resp.Body)
	st := resp.Body.(streamstat.Reporter).StreamStats()
	out := "ok"
	var se *streamguard.Error
	if errors.As(err, &se) {
		out = string(se.Source) + " " + string(se.Reason) + " " + se.Code + " " + se.Message
	}
	return out + " | " + st.Dialect
}

// The guard's fast path for the built-in dialects judges every stream as
// the dialect values do when they are configured explicitly (and so
// matched by calling each predicate).
func TestFastPathMatchesDialects(t *testing.T) {
	events := []string{
		"data: [DONE]\n\n",
		`data: {"id":"c","object":"chat.completion.chunk","choices":[]}` + "\n\n",
		`data: {"object":"text_completion","id":"x"}` + "\n\n",
		`data: {"error":{"message":"boom","type":"server_error"}}` + "\n\n",
		`data: {"object":"error","message":"old vllm"}` + "\n\n",
		`data: {"error":"tgi"}` + "\n\n",
		"event: response.created\ndata: {\"type\":\"response.created\"}\n\n",
		`data: {"type":"response.output_text.delta","delta":"x"}` + "\n\n",
		"event: response.completed\ndata: {\"type\":\"response.completed\"}\n\n",
		`data: {"type":"response.incomplete"}` + "\n\n",
		"event: response.failed\ndata: {\"type\":\"response.failed\",\"response\":{\"error\":{\"code\":\"server_error\",\"message\":\"f\"}}}\n\n",
		`data: {"type":"error","code":"rate_limit_exceeded","message":"slow"}` + "\n\n",
		"event: message_start\ndata: {\"type\":\"message_start\"}\n\n",
		"event: ping\ndata: {\"type\":\"ping\"}\n\n",
		"event: content_block_delta\ndata: {\"type\":\"content_block_delta\"}\n\n",
		"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
		"event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n",
		`data: {"type":"message_delta"}` + "\n\n",
		"data: plain text\n\n",
		`data: {"id":"x"}` + "\n\n",
		`data: { "error" : "spaced" }` + "\n\n",
		`data: {"error":null,"id":"c","object":"chat.completion.chunk","choices":[]}` + "\n\n",
		`data: {"error": "", "id":"c"}` + "\n\n",
		`data: {"error":false}` + "\n\n",
		": comment\n\n",
		"event: custom\ndata: {}\n\n",
	}
	explicit := sse.Config{Dialects: sse.DefaultDialects()}
	n := 0
	// Every stream of one, two or three of the events, in every order.
	for _, a := range events {
		for _, b := range append([]string{""}, events...) {
			for _, c := range []string{"", events[0], events[8], events[15]} {
				stream := a + b + c
				if fast, slow := verdictOf(sse.Config{}, stream), verdictOf(explicit, stream); fast != slow {
					t.Errorf("stream %q:\n fast path %s\n dialects  %s", stream, fast, slow)
				}
				n++
			}
		}
	}
	if n < 2000 {
		t.Fatalf("%d streams", n)
	}
}

// A stream longer than the fast path's detection window is judged alike.
func TestFastPathMatchesDialectsLong(t *testing.T) {
	var b strings.Builder
	for range 20 {
		b.WriteString(`data: {"id":"x","choices":[]}` + "\n\n")
	}
	b.WriteString(`data: {"id":"c","object":"chat.completion.chunk"}` + "\n\n")
	for _, end := range []string{"", "data: [DONE]\n\n", `data: {"error":"late"}` + "\n\n"} {
		stream := b.String() + end
		if fast, slow := verdictOf(sse.Config{}, stream), verdictOf(sse.Config{Dialects: sse.DefaultDialects()}, stream); fast != slow {
			t.Errorf("ending %q:\n fast path %s\n dialects  %s", end, fast, slow)
		}
	}
}
