// Package streamstat lets a layer that wraps a response body read what a
// stream guard beneath it saw, without importing the sse package: the tracing
// layer uses it to put events, time to first event, resumes and the verdict
// on its span.
package streamstat

import "time"

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
