package tracing

import (
	"encoding/json"
	"io"
	"net/http"
	"time"

	"github.com/streamguard/streamguard/internal/streamstat"
	"go.opentelemetry.io/otel/attribute"

	// The GenAI semantic conventions (gen_ai.*): semantic conventions
	// v1.42.0 moved them to a repository of their own, so v1.41.0 is the
	// last schema of the otel Go module that carries them, and its keys
	// and instruments are the ones used here. The HTTP attributes of the
	// same spans come from v1.43.0 (the tracer's schema URL); the GenAI
	// metrics are recorded by a meter of schema v1.41.0.
	semconvgenai "go.opentelemetry.io/otel/semconv/v1.41.0"
	"go.opentelemetry.io/otel/semconv/v1.41.0/genaiconv"
)

// A response stream the stream guard recognised as a model call (an event
// stream of a built-in dialect: OpenAI chat, Responses, Anthropic) gets the
// GenAI semantic conventions of semconv v1.41.0 besides the HTTP ones, on
// its span:
//
//   - gen_ai.operation.name: chat (chat completions, Responses and
//     Anthropic Messages alike, as the conventions name them);
//   - gen_ai.provider.name: openai (OpenAI chat and Responses) or
//     anthropic;
//   - gen_ai.request.model: the request body's top-level "model", read only
//     when the body is buffered for replay (Request.GetBody) and at most
//     maxModelBody long, from its first modelPrefix bytes;
//   - gen_ai.response.id, gen_ai.response.model,
//     gen_ai.response.finish_reasons, gen_ai.usage.input_tokens and
//     gen_ai.usage.output_tokens, as far as the stream reported them;
//   - gen_ai.response.time_to_first_chunk: seconds from the start of the
//     span to the first event.
//
// and on the metrics gen_ai.client.operation.duration,
// gen_ai.client.token.usage (by gen_ai.token.type),
// gen_ai.client.operation.time_to_first_chunk and
// gen_ai.client.operation.time_per_output_chunk (see genaiInstruments).

// The bounds of the request model's read: a body buffered for replay of at
// most maxModelBody bytes, of which the first modelPrefix are scanned.
const (
	maxModelBody = 64 << 10
	modelPrefix  = 4 << 10
)

// genaiKind returns the operation and provider of a guarded stream's
// dialect; ok is false for a dialect that is not a model call the
// conventions name.
func genaiKind(dialect string) (op genaiconv.OperationNameAttr, prov genaiconv.ProviderNameAttr, ok bool) {
	switch dialect {
	case "openai", "responses":
		return genaiconv.OperationNameChat, genaiconv.ProviderNameOpenAI, true
	case "anthropic":
		return genaiconv.OperationNameChat, genaiconv.ProviderNameAnthropic, true
	}
	return "", "", false
}

// genaiSpanAttrs are the GenAI attributes of a span that started at start.
func genaiSpanAttrs(g *streamstat.GenAI, model string, start time.Time) []attribute.KeyValue {
	op, prov, ok := genaiKind(g.Dialect)
	if !ok {
		return nil
	}
	attrs := make([]attribute.KeyValue, 0, 10)
	attrs = append(attrs,
		semconvgenai.GenAIOperationNameKey.String(string(op)),
		semconvgenai.GenAIProviderNameKey.String(string(prov)))
	if model != "" {
		attrs = append(attrs, semconvgenai.GenAIRequestModel(model))
	}
	if g.ResponseID != "" {
		attrs = append(attrs, semconvgenai.GenAIResponseID(g.ResponseID))
	}
	if g.ResponseModel != "" {
		attrs = append(attrs, semconvgenai.GenAIResponseModel(g.ResponseModel))
	}
	if len(g.FinishReasons) > 0 {
		attrs = append(attrs, semconvgenai.GenAIResponseFinishReasons(g.FinishReasons...))
	}
	if g.InputTokens >= 0 {
		attrs = append(attrs, semconvgenai.GenAIUsageInputTokensKey.Int64(g.InputTokens))
	}
	if g.OutputTokens >= 0 {
		attrs = append(attrs, semconvgenai.GenAIUsageOutputTokensKey.Int64(g.OutputTokens))
	}
	if !g.FirstChunk.IsZero() {
		attrs = append(attrs, semconvgenai.GenAIResponseTimeToFirstChunk(max(0, g.FirstChunk.Sub(start).Seconds())))
	}
	return attrs
}

// genaiServerAttrs are server.address and server.port of r, for the GenAI
// metrics.
func genaiServerAttrs(r *http.Request) []attribute.KeyValue {
	return appendServer(make([]attribute.KeyValue, 0, 2), r)
}

// requestModel returns the top-level "model" of r's JSON body, without
// touching the body being sent: only from a body buffered for replay
// (GetBody) of a known length up to maxModelBody, and only from its first
// modelPrefix bytes; "" otherwise.
func requestModel(r *http.Request) string {
	if r == nil || r.GetBody == nil || r.ContentLength <= 0 || r.ContentLength > maxModelBody {
		return ""
	}
	rc, err := r.GetBody()
	if err != nil || rc == nil {
		return ""
	}
	defer rc.Close()
	buf := make([]byte, min(r.ContentLength, modelPrefix))
	n, _ := io.ReadFull(rc, buf)
	return topLevelModel(buf[:n])
}

// topLevelModel returns the string value of the "model" key of the JSON
// object b starts, or "" when b (which may be a truncated prefix) has none
// before it ends. Nested objects and arrays are skipped, never searched.
func topLevelModel(b []byte) string {
	i := skipWS(b, 0)
	if i >= len(b) || b[i] != '{' {
		return ""
	}
	i++
	for {
		i = skipWS(b, i)
		if i >= len(b) || b[i] != '"' {
			return ""
		}
		ke := stringEnd(b, i)
		if ke < 0 {
			return ""
		}
		key := b[i:ke]
		i = skipWS(b, ke)
		if i >= len(b) || b[i] != ':' {
			return ""
		}
		i = skipWS(b, i+1)
		ve := valueEnd(b, i)
		if ve < 0 {
			return ""
		}
		if string(key) == `"model"` && b[i] == '"' {
			var s string
			if json.Unmarshal(b[i:ve], &s) != nil {
				return ""
			}
			return streamstat.CapField(s)
		}
		i = skipWS(b, ve)
		if i >= len(b) || b[i] != ',' {
			return ""
		}
		i++
	}
}

// stringEnd returns the index just past the JSON string starting at b[i],
// or -1 when b ends first.
func stringEnd(b []byte, i int) int {
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '\\':
			j++
		case '"':
			return j + 1
		}
	}
	return -1
}

// valueEnd returns the index just past the JSON value starting at b[i], or
// -1 when b ends first.
func valueEnd(b []byte, i int) int {
	if i >= len(b) {
		return -1
	}
	if b[i] == '"' {
		return stringEnd(b, i)
	}
	depth := 0
	for j := i; j < len(b); j++ {
		switch c := b[j]; c {
		case '"':
			if j = stringEnd(b, j); j < 0 {
				return -1
			}
			j--
		case '{', '[':
			depth++
		case '}', ']':
			if depth == 0 {
				return j
			}
			if depth--; depth == 0 {
				return j + 1
			}
		case ',':
			if depth == 0 {
				return j
			}
		}
	}
	return -1
}

func skipWS(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}
