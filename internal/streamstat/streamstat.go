// Package streamstat lets a layer that wraps a response body read what a
// stream guard beneath it saw, without importing the sse package: the tracing
// layer uses it to put events, time to first event, resumes and the verdict
// on its span.
package streamstat

import (
	"time"
	"unicode/utf8"
)

// Stats is what a guard saw of one response body so far.
type Stats struct {
	Events     int64     // complete events delivered to the reader
	Bytes      int64     // body bytes delivered to the reader
	FirstEvent time.Time // when the first complete event was delivered; zero if none
	Terminal   bool      // the dialect's terminal event was delivered
	Dialect    string    // "openai", "responses", "anthropic", or "" when unknown or not SSE
	// Resumes are the resumes the guard tried on this stream, in order,
	// successful or not: at most the guard's resume limit. Nil when none.
	Resumes []Resume
	// GenAI is what the guard read of a model call: set only for an event
	// stream of a built-in dialect (OpenAI chat, Responses, Anthropic) with
	// the guard's default dialects; nil for any other body.
	GenAI *GenAI
}

// MaxFinishReasons caps GenAI.FinishReasons, and MaxFieldBytes each string
// of GenAI: a stream cannot grow what the guard keeps of it.
const (
	MaxFinishReasons = 8
	MaxFieldBytes    = 256
)

// CapField cuts s to at most MaxFieldBytes, at the start of a character:
// an attribute's value stays valid UTF-8.
func CapField(s string) string {
	if len(s) <= MaxFieldBytes {
		return s
	}
	n := MaxFieldBytes
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// GenAI is what a guard read of a model call's stream, from the few events
// that carry it (never from every event): the first OpenAI chunk, the
// chunks that carry a finish reason or usage, Anthropic's message_start and
// message_delta, and Responses' response.created and its terminal event.
type GenAI struct {
	Dialect       string   // "openai", "responses" or "anthropic"
	ResponseID    string   // the response's id ("chatcmpl-...", "resp_...", "msg_..."); "" when not seen
	ResponseModel string   // the model that answered; "" when not seen
	FinishReasons []string // in the order seen, at most MaxFinishReasons
	InputTokens   int64    // -1 when the stream reported none
	OutputTokens  int64    // -1 when the stream reported none
	// Chunks counts the events delivered up to and including the
	// terminal event; 0 when no terminal event came.
	Chunks     int64
	FirstChunk time.Time // when the first event arrived; zero if none
	LastChunk  time.Time // when the terminal event arrived; zero if none
}

// Resume is one attempt of the guard to continue a broken stream.
type Resume struct {
	At          time.Time // when the resume request was sent
	Protocol    string    // the resumer's name: "sse-id", "resumable-stream", "responses", or a user's
	Cause       string    // the reason of the failure it repaired: "truncated", "stalled"
	LastEventID string    // the last event delivered before it, sanitized
	StatusCode  int       // the resume response's status; 0 when none came
	Err         string    // why it failed, sanitized and scrubbed; "" when the stream went on
}

// Reporter is implemented by a guarded response body. StreamStats is safe to
// call concurrently with Read and after Close.
type Reporter interface {
	StreamStats() Stats
}
