// Package streamstat lets a layer that wraps a response body read what a
// stream guard beneath it saw, without importing the sse package: the tracing
// layer uses it to put events, time to first event and the verdict on its
// span.
package streamstat

import "time"

// Stats is what a guard saw of one response body so far.
type Stats struct {
	Events     int64     // complete events delivered to the reader
	Bytes      int64     // body bytes delivered to the reader
	FirstEvent time.Time // when the first complete event was delivered; zero if none
	Terminal   bool      // the dialect's terminal event was delivered
	Dialect    string    // "openai", "responses", "anthropic", or "" when unknown or not SSE
}

// Reporter is implemented by a guarded response body. StreamStats is safe to
// call concurrently with Read and after Close.
type Reporter interface {
	StreamStats() Stats
}
