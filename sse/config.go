package sse

import (
	"errors"
	"time"
)

// DefaultMaxEventBytes is the largest event the guard passes when
// Config.MaxEventBytes is zero: 8 MiB, room for a large tool-call or image
// event, small enough that an endless line costs a bounded buffer.
const DefaultMaxEventBytes = 8 << 20

// detectEvents is how many events the guard searches for an OpenAI chunk's
// "object" before it takes a stream for one of no known dialect: the first
// event names it, and searching every event of an unknown stream would cost
// a scan of each.
const detectEvents = 16

// maxIDBytes caps the last event ID the guard keeps for Error.LastEventID.
const maxIDBytes = 1024

// The causes a guarded stream's *streamguard.Error wraps when the guard
// itself decided the verdict; errors.Is finds them.
var (
	// ErrIdleTimeout: no bytes arrived for Config.IdleTimeout (stalled).
	ErrIdleTimeout = errors.New("sse: idle timeout")
	// ErrPartialEvent: the body ended cleanly in the middle of an event
	// (truncated).
	ErrPartialEvent = errors.New("sse: stream ended in the middle of an event")
	// ErrNoTerminal: the body ended cleanly at an event boundary without its
	// dialect's terminal event (truncated).
	ErrNoTerminal = errors.New("sse: stream ended without its terminal event")
	// ErrEventTooLarge: an event grew past Config.MaxEventBytes
	// (event_too_large).
	ErrEventTooLarge = errors.New("sse: event too large")
	// ErrInBand: the stream carried an error event (model_error, or the
	// platform's reason by its code).
	ErrInBand = errors.New("sse: error event in the stream")
	// ErrClosed: the caller closed the body before its end (canceled).
	ErrClosed = errors.New("sse: body closed by the caller")
	// ErrNoEvents: a 2xx text/event-stream body ended cleanly without a
	// single event (no_events).
	ErrNoEvents = errors.New("sse: stream ended without any event")
)

// Config configures a stream guard. The zero value is ready to use: event
// streams stall after DefaultIdleTimeout without a byte (DefaultFirstByteTimeout
// before the first), 8 MiB events, no failure event, the built-in dialects.
type Config struct {
	// IdleTimeout ends a stream that sends no bytes for this long while its
	// reader waits (comments and pings count) as stalled, and closes its
	// connection. Time spent by the reader between its own Reads never
	// counts. Zero means DefaultIdleTimeout (120 s) for text/event-stream
	// bodies and the JSON streams the guard frames (see Guard), and off for
	// other bodies; a positive value applies to every
	// guarded body; a negative value turns stall detection off, the wait
	// for the first byte included. NewTransport also cuts the body of an
	// error status (400 or more) once a Read of it waits this long (zero:
	// DefaultIdleTimeout).
	IdleTimeout time.Duration
	// FirstByteTimeout replaces IdleTimeout until the body's first byte
	// after the header, the time a model may think before it streams.
	// Zero means DefaultFirstByteTimeout (600 s), or IdleTimeout when that
	// is longer; a negative value means IdleTimeout from the start. It
	// applies only while stall detection is on.
	FirstByteTimeout time.Duration
	// MaxEventBytes caps each event: an event larger than it (its lines
	// with their line ends, and one byte for the blank line that ends it)
	// fails the stream with event_too_large after the events before it,
	// however the upstream's reads split the stream. For a JSON stream it
	// caps each record: a line with its line end, or an array element. It
	// bounds the guard's memory too: the guard holds back at most this
	// much of an incomplete event. Zero means DefaultMaxEventBytes (8 MiB).
	MaxEventBytes int
	// FailureEvent makes a failed text/event-stream body deliver one last
	// frame, an "error" event whose data is the error's JSON document (see
	// AppendFailureFrame), before Read returns the error, so that consumers
	// that swallow transport errors still see the failure. It is meant for
	// consumers downstream of a relay, in another process. A caller in the
	// same process gets less with it on: openai-go, go-openai and
	// anthropic-sdk-go stop at the frame with their own error type, whose
	// message carries the source, reason and hint, but errors.As no longer
	// reaches the *streamguard.Error, which they would otherwise return from
	// Read. For a JSON stream it delivers the failure record instead (see
	// AppendFailureRecord; for a streamed array, a last error element and
	// its ']'). Ollama's own Go client needs it even in the same process:
	// it stops at a Read error without returning it (api.Client reads the
	// body with a bufio.Scanner and never looks at its Err), so only the
	// record makes its Chat or Generate fail. Off by default.
	FailureEvent bool
	// Dialects are the streaming APIs the guard recognises. Nil means
	// DefaultDialects(): OpenAI, Responses and Anthropic, and Ollama in a
	// JSON-lines body. A list of your own replaces them in every framing
	// (add Ollama to it to keep Ollama's); in a JSON stream its predicates
	// see each record as data, with a nil type. The built-in set is
	// matched by a fast path; a list of your own (even one that includes
	// them) is matched by calling each predicate.
	Dialects []Dialect
	// Resume continues a stream that was truncated or stalled, wherever a
	// resume protocol applies, within the request's deadline (see
	// ResumeConfig and DefaultResumers). On by default in NewTransport;
	// Guard alone resumes only when Resume.Transport is set.
	Resume ResumeConfig
}

// body is a guarded response body. Read is for one goroutine, as for any
