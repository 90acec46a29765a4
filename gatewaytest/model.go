package gatewaytest

import (
	"fmt"
	"io"
	"net/http"
)

// The model handlers below stand in for a model server behind the gateway.
// Each streams its events with a flush after every one, stops when the
// request's context ends, and is deterministic: event i of the same handler
// is always the same bytes.

// ChatStream streams n OpenAI chat-completion chunks and then data: [DONE],
// as an OpenAI-compatible route (vLLM, TGI, the platform's own) does.
func ChatStream(n int) http.Handler {
	return eventStream(func(w io.Writer, i int) {
		if i < n {
			fmt.Fprintf(w, "data: %s\n\n", ChatChunk(i))
			return
		}
		io.WriteString(w, "data: [DONE]\n\n")
	}, n+1)
}

// ChatChunk returns the JSON of the i-th chat-completion chunk ChatStream
// sends.
func ChatChunk(i int) string {
	return fmt.Sprintf(`{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"tok%d "},"finish_reason":null}]}`, i)
}

// AnthropicStream streams an Anthropic Messages stream with n text deltas:
// message_start, content_block_start, a ping, the deltas, content_block_stop,
// message_delta and message_stop.
func AnthropicStream(n int) http.Handler {
	return eventStream(func(w io.Writer, i int) {
		switch {
		case i == 0:
			io.WriteString(w, "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"content\":[]}}\n\n")
			io.WriteString(w, "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n")
			io.WriteString(w, "event: ping\ndata: {\"type\": \"ping\"}\n\n")
		case i <= n:
			fmt.Fprintf(w, "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"tok%d \"}}\n\n", i-1)
		default:
			io.WriteString(w, "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n")
			io.WriteString(w, "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"}}\n\n")
			io.WriteString(w, "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n")
		}
	}, n+2)
}

// ResponsesStream streams an OpenAI Responses stream with n text deltas,
// ending in response.completed.
func ResponsesStream(n int) http.Handler {
	return eventStream(func(w io.Writer, i int) {
		switch {
		case i == 0:
			io.WriteString(w, "event: response.created\ndata: {\"type\":\"response.created\",\"response\":{\"id\":\"resp_1\",\"status\":\"in_progress\"}}\n\n")
		case i <= n:
			fmt.Fprintf(w, "event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"delta\":\"tok%d \"}\n\n", i-1)
		default:
			io.WriteString(w, "event: response.completed\ndata: {\"type\":\"response.completed\",\"response\":{\"id\":\"resp_1\",\"status\":\"completed\"}}\n\n")
		}
	}, n+2)
}

// ErrorStream streams n chat chunks, then an in-band error event
// data: {"error": {...}}, then data: [DONE], as vLLM and TGI do when
// generation fails after the 200.
func ErrorStream(n int, message string) http.Handler {
	return eventStream(func(w io.Writer, i int) {
		switch {
		case i < n:
			fmt.Fprintf(w, "data: %s\n\n", ChatChunk(i))
		case i == n:
			fmt.Fprintf(w, "data: {\"error\":{\"message\":%q,\"type\":\"server_error\",\"code\":500}}\n\n", message)
		default:
			io.WriteString(w, "data: [DONE]\n\n")
		}
	}, n+2)
}

// JSON answers every request with status and body as application/json.
func JSON(status int, body string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		io.WriteString(w, body)
	})
}

// Echo answers 200 with the request body, as application/json.
func Echo() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.Copy(w, r.Body)
	})
}

// eventStream writes frames 0..count-1 of an SSE stream, flushing each.
func eventStream(frame func(w io.Writer, i int), count int) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.Header().Set("Cache-Control", "no-cache")
		w.WriteHeader(http.StatusOK)
		rc := http.NewResponseController(w)
		for i := 0; i < count; i++ {
			if r.Context().Err() != nil {
				return
			}
			frame(w, i)
			if rc.Flush() != nil {
				return
			}
		}
	})
}
