package streamguard

import (
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/streamguard/streamguard/internal/redact"
)

// Source says where a failure happened: who has to act on it.
type Source string

// The sources of a failure.
const (
	SourceRequest  Source = "request"  // the caller's request or account: 400 401 402 403 404 413 422
	SourcePlatform Source = "platform" // gateway/routing: model unreachable, draining, shedding, gateway timeout
	SourceModel    Source = "model"    // the model server's own error, passed through; in-band stream errors
	SourceNetwork  Source = "network"  // connection failed or reset between client and gateway
	SourceClient   Source = "client"   // the caller went away or its own deadline expired
	SourceUnknown  Source = "unknown"
)

// Reason says what happened. Each reason has a hint; see [Error.Hint].
type Reason string

// The reasons of a failure.
const (
	ReasonBadRequest      Reason = "bad_request"
	ReasonUnauthorized    Reason = "unauthorized"
	ReasonNotFound        Reason = "not_found"
	ReasonBilling         Reason = "billing"
	ReasonPayloadTooLarge Reason = "payload_too_large"
	ReasonRateLimited     Reason = "rate_limited"
	ReasonModelError      Reason = "model_error"
	ReasonUnreachable     Reason = "unreachable" // 502 "Error making prediction": container crashed/restarted/OOMKilled
	ReasonUnavailable     Reason = "unavailable" // 503 draining, routing, circuit breaker, model not ready
	ReasonPlatformError   Reason = "platform_error"
	ReasonTimeout         Reason = "timeout"    // 504 or the request budget expired
	ReasonCanceled        Reason = "canceled"   // caller canceled; "client closed connection"
	ReasonConnection      Reason = "connection" // no response: dial, TLS, reset before headers
	ReasonTruncated       Reason = "truncated"  // stream ended early after a 2xx
	ReasonStalled         Reason = "stalled"    // stream idle past its idle timeout
	ReasonEventTooLarge   Reason = "event_too_large"
	// ReasonNoEvents: a 2xx text/event-stream body ended without a single
	// event: empty, only comments, or not an event stream at all (an HTML
	// error page, a JSON error object). Code says which: "empty",
	// "comments", "html", "json" or "text". A body cut inside its first
	// event ("data: {...", a JSON line's "{...") is truncated instead.
	ReasonNoEvents Reason = "no_events"
	// ReasonResumeMismatch: a broken stream was resumed, and the server's
	// continuation did not start right after the last event delivered (it
	// restarted the stream, or skipped ahead); the guard ended the stream
	// rather than deliver an event twice or leave a gap. Err holds the
	// original failure.
	ReasonResumeMismatch Reason = "resume_mismatch"
)

// Error is a classified failure of a call to an inference endpoint.
//
// It is returned by [Check] and [FromError], by the round trips of the
// subpackages when no response was obtained, and by a guarded stream's Read
// when the stream fails after its 2xx. Use [errors.As] to find it through
// [*url.Error] and other wrappers. Message is sanitized: no control
// characters, at most [MaxMessage] bytes when taken from a body. No field ever
// holds a credential.
type Error struct {
	StatusCode  int    // 0 when no response was obtained
	Source      Source // where the failure happened
	Reason      Reason // what happened
	Message     string // the body's error message, or the transport error's text
	Code        string // machine code from the body (e.g. Baseten error_code), if any
	RequestID   string // from the response headers, if any
	Retryable   bool   // whether the same request may succeed if sent again
	Attempts    int    // attempts made, when known
	Events      int64  // stream only: complete events delivered before the failure
	Bytes       int64  // stream only: body bytes delivered before the failure
	LastEventID string // stream only: last committed SSE id
	Err         error  // the underlying cause (io.ErrUnexpectedEOF, context.DeadlineExceeded, ...)

	// Elapsed is the time from the first attempt to this failure, when
	// the request was retried (Attempts > 1); zero otherwise, and on the
	// errors retry.Policy.OnRetry sees, which are not the request's
	// failure. With it, Hint says how many attempts failed over how long.
	Elapsed time.Duration
	// Budget is the request's time budget in force when the stack gave it
	// its deadline, so that a hint can quote it; zero when unknown.
	Budget time.Duration
	// Resumes is how many times the stream guard tried to resume the
	// stream after it broke (see the sse package's resume), when the
	// stream failed all the same; zero when it tried none.
	Resumes int
	// Limit is the body cap in bytes a payload_too_large failure ran into,
	// when known (the client's or the server's own cap, or the one the
	// platform's 413 message names), so that its hint quotes it; zero
	// otherwise.
	Limit int64
}

// Error returns one line: the status (when there was one), source, reason,
// message and, in parentheses, the hint. For example:
//
//	streamguard: 502 platform unreachable: Error making prediction (check the model logs for a crash or OOMKilled; if they are clean, retry)
func (e *Error) Error() string {
	var b strings.Builder
	b.Grow(96 + len(e.Message))
	b.WriteString("streamguard: ")
	if e.StatusCode > 0 {
		b.WriteString(strconv.Itoa(e.StatusCode))
		b.WriteByte(' ')
	}
	src := e.Source
	if src == "" {
		src = SourceUnknown
	}
	b.WriteString(string(src))
	if e.Reason != "" {
		b.WriteByte(' ')
		b.WriteString(string(e.Reason))
	}
	if e.Attempts > 1 {
		b.WriteString(" after ")
		b.WriteString(strconv.Itoa(e.Attempts))
		b.WriteString(" attempts")
	}
	if e.Events > 0 {
		b.WriteString(" after ")
		b.WriteString(strconv.FormatInt(e.Events, 10))
		b.WriteString(" events")
	}

	msg := e.Message
	if msg == "" && e.Err != nil {
		msg = e.Err.Error()
	}
	if msg = clean(msg, MaxMessage, nil); msg != "" {
		b.WriteString(": ")
		b.WriteString(msg)
	}
	if h := e.Hint(); h != "" {
		b.WriteString(" (")
		b.WriteString(h)
		b.WriteByte(')')
	}
	return b.String()
}

// Unwrap returns the underlying cause, so that errors.Is(err,
// context.DeadlineExceeded) and the like see through an *Error.
func (e *Error) Unwrap() error { return e.Err }

// clean is what every text taken from the wire goes through before an Error
// keeps it: control characters removed, the request's secrets and every
// well-known key shape replaced by REDACTED (before the cut, so that no part
// of a key survives it), then cut to max bytes.
func clean(s string, max int, secrets []string) string {
	return Sanitize(redact.Scrub(Sanitize(s, 0), secrets), max)
}

// Sanitize returns s with every control character (C0, DEL, C1, the
// Unicode line and paragraph separators, and the bidirectional controls
// that could reorder the text around it in a log) replaced by a space, invalid UTF-8
// replaced by U+FFFD, surrounding space trimmed, and the result cut to at most
// max bytes at a character boundary (max <= 0: no cap). It is what keeps a
// message taken from a server on one line, in an error or in an SSE frame.
func Sanitize(s string, max int) string {
	clean := true
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f {
			clean = false
			break
		}
	}
	if clean {
		s = strings.TrimSpace(s)
		if max > 0 && len(s) > max {
			s = strings.TrimSpace(s[:max])
		}
		return s
	}
	n := len(s)
	if max > 0 && max < n {
		n = max + utf8.UTFMax // as a comparison: max may be math.MaxInt
	}
	var b strings.Builder
	b.Grow(n)
	for _, r := range s {
		if unicode.IsControl(r) || r == '\u2028' || r == '\u2029' || unicode.Is(unicode.Bidi_Control, r) {
			r = ' '
		}
		if max > 0 && b.Len()+utf8.RuneLen(r) > max {
			break
		}
		b.WriteRune(r)
	}
	return strings.TrimSpace(b.String())
}
