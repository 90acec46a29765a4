package gatewaytest

import (
	"fmt"
	"io"
	"net/http"
)

// The model handlers below stream what the GenAI semantic conventions read
// from a model call: a response id and model, a finish reason and token
// usage, as the providers send them. Their values are the constants that
// follow, so that a test can compare with them.
const (
	GenAIChatID        = "chatcmpl-genai"
	GenAIResponsesID   = "resp_genai"
	GenAIAnthropicID   = "msg_genai"
	GenAIModel         = "m-2025-01-01" // the model each handler says answered
	GenAIInputTokens   = 17
	GenAIOutputTokens  = 42
	GenAIChatFinish    = "stop"
	GenAIAnthropicStop = "end_turn"
)

// ChatStreamWithUsage streams n OpenAI chat-completion chunks, a last chunk
// with finish_reason "stop", the usage chunk that stream_options
// {"include_usage": true} asks for (choices empty), and data: [DONE], as
// OpenAI does (every chunk carries "usage": null until the last).
func ChatStreamWithUsage(n int) http.Handler {
	return eventStream(func(w io.Writer, i int) {
		const head = `{"id":"` + GenAIChatID + `","object":"chat.completion.chunk","created":1,"model":"` + GenAIModel + `",`
		switch {
		case i < n:
			fmt.Fprintf(w, "data: %s\"choices\":[{\"index\":0,\"delta\":{\"content\":\"tok%d \"},\"finish_reason\":null}],\"usage\":null}\n\n", head, i)
		case i == n:
			fmt.Fprintf(w, "data: %s\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":%q}],\"usage\":null}\n\n", head, GenAIChatFinish)
		case i == n+1:
			fmt.Fprintf(w, "data: %s\"choices\":[],\"usage\":{\"prompt_tokens\":%d,\"completion_tokens\":%d,\"total_tokens\":%d}}\n\n",
				head, GenAIInputTokens, GenAIOutputTokens, GenAIInputTokens+GenAIOutputTokens)
		default:
			io.WriteString(w, "data: [DONE]\n\n")
		}
	}, n+3)
}

// ResponsesStreamWithUsage streams an OpenAI Responses stream with n text
// deltas: response.created with the id and model, the deltas, and
// response.completed with its usage.
func ResponsesStreamWithUsage(n int) http.Handler {
	return eventStream(func(w io.Writer, i int) {
		const resp = `"id":"` + GenAIResponsesID + `","object":"response","created_at":1,"model":"` + GenAIModel + `"`
		switch {
		case i == 0:
			fmt.Fprintf(w, "event: response.created\ndata: {\"type\":\"response.created\",\"sequence_number\":0,\"response\":{%s,\"status\":\"in_progress\",\"output\":[]}}\n\n", resp)
		case i <= n:
			fmt.Fprintf(w, "event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"sequence_number\":%d,\"item_id\":\"msg_1\",\"output_index\":0,\"content_index\":0,\"delta\":\"tok%d \"}\n\n", i, i-1)
		default:
			fmt.Fprintf(w, "event: response.completed\ndata: {\"type\":\"response.completed\",\"sequence_number\":%d,\"response\":{%s,\"status\":\"completed\",\"output\":[],\"usage\":{\"input_tokens\":%d,\"output_tokens\":%d,\"total_tokens\":%d}}}\n\n",
				i, resp, GenAIInputTokens, GenAIOutputTokens, GenAIInputTokens+GenAIOutputTokens)
		}
	}, n+2)
}

// AnthropicStreamWithUsage streams an Anthropic Messages stream with n text
// deltas whose message_start carries the id, model and input tokens, and
// whose message_delta carries stop_reason "end_turn" and the output tokens.
func AnthropicStreamWithUsage(n int) http.Handler {
	return eventStream(func(w io.Writer, i int) {
		switch {
		case i == 0:
			fmt.Fprintf(w, "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":%q,\"type\":\"message\",\"role\":\"assistant\",\"model\":%q,\"content\":[],\"stop_reason\":null,\"usage\":{\"input_tokens\":%d,\"output_tokens\":1}}}\n\n",
				GenAIAnthropicID, GenAIModel, GenAIInputTokens)
			io.WriteString(w, "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n")
		case i <= n:
			fmt.Fprintf(w, "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"tok%d \"}}\n\n", i-1)
		default:
			io.WriteString(w, "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n")
			fmt.Fprintf(w, "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":%q,\"stop_sequence\":null},\"usage\":{\"output_tokens\":%d}}\n\n",
				GenAIAnthropicStop, GenAIOutputTokens)
			io.WriteString(w, "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n")
		}
	}, n+2)
}
