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
	// "comments", "html", "json" or "text".
	ReasonNoEvents Reason = "no_events"
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
	// the request was retried (Attempts > 1); zero otherwise.
	Elapsed time.Duration
	// Budget is the request's time budget in force when the stack gave it
	// its deadline, so that a hint can quote it; zero when unknown.
	Budget time.Duration
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

// Hint says where to look next, from the platform's quick reference: the
// model logs for a crashed container, the request for a 4xx, a retry with
// backoff for a draining replica. It depends on the reason and, where the
// same reason has different owners, on the source.
func (e *Error) Hint() string {
	switch e.Reason {
	case ReasonBadRequest:
		if e.Source == SourceModel {
			return "the model rejected the input: compare the request with the model's input schema and read the model logs"
		}
		return "check that the request body is valid JSON and the URL path is correct"
	case ReasonUnauthorized:
		if e.Source == SourcePlatform {
			return "a service between you and the model had its own credentials refused upstream: not your request; tell its operator"
		}
		return "check the API key in the Authorization header (Bearer or Api-Key)"
	case ReasonNotFound:
		return "confirm the model or deployment ID and that you call the right predict endpoint"
	case ReasonBilling:
		return "check the account's billing and usage settings, or contact its owner"
	case ReasonPayloadTooLarge:
		return "send large inputs by file or URL, not inline (100 MB edge cap; 256 KiB for async by default)"
	case ReasonRateLimited:
		return "slow down: retry after the Retry-After delay, with backoff"
	case ReasonModelError:
		return "the model's own error: read the error body and the model logs"
	case ReasonUnreachable:
		return "check the model logs for a crash or OOMKilled; if they are clean, retry"
	case ReasonUnavailable:
		return "mostly transient (draining, routing or not ready): retry with exponential backoff"
	case ReasonPlatformError:
		return "a platform-side error: retry with backoff; if it persists, contact support with the request ID"
	case ReasonTimeout:
		if e.Source == SourceClient {
			return "your own deadline expired first: set your client's timeout to the model's expected response time (the platform allows 1200 s)"
		}
		return "the prediction ran past the platform's timeout (1200 s sync, 3600 s async): profile the model, raise its resources, or move long work to async"
	case ReasonCanceled:
		return "the client disconnected or canceled before the response finished: not a platform or model failure"
	case ReasonConnection:
		return "no response was obtained: check DNS, TLS and connectivity to the gateway; retry"
	case ReasonTruncated:
		return "the stream stopped before its end: treat the request as failed, check the model logs, and retry"
	case ReasonStalled:
		return "the stream sent nothing within its idle timeout: check the model logs for a hang, and retry"
	case ReasonNoEvents:
		return noEventsHint(e.Code)
	case ReasonEventTooLarge:
		return "an event exceeded the guard's size limit: raise sse.Config.MaxEventBytes if the stream is legitimate"
	}
	return ""
}

// noEventsHint names what a 2xx event stream without events carried.
func noEventsHint(code string) string {
	switch code {
	case "html":
		return "the server or a proxy answered 200 with an HTML page, not events (an error or login page): check the URL, the proxy and the server logs"
	case "json":
		return "the server answered 200 with a JSON document, not events (often an error object): read the message, and check that the request asked for a stream"
	case "text":
		return "the server answered 200 with text that is not an event stream: check the URL and the server"
	}
	return "the stream ended before its first event: check the model logs, and retry"
}

// clean is what every text taken from the wire goes through before an Error
// keeps it: control characters removed, the request's secrets and every
// well-known key shape replaced by REDACTED (before the cut, so that no part
// of a key survives it), then cut to max bytes.
func clean(s string, max int, secrets []string) string {
	return Sanitize(redact.Scrub(Sanitize(s, 0), secrets), max)
}

// Sanitize returns s with every control character (C0, DEL, C1, and the
// Unicode line and paragraph separators) replaced by a space, invalid UTF-8
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
	var b strings.Builder
	b.Grow(min(len(s), max+utf8.UTFMax))
	for _, r := range s {
		if unicode.IsControl(r) || r == '\u2028' || r == '\u2029' {
			r = ' '
		}
		if max > 0 && b.Len()+utf8.RuneLen(r) > max {
			break
		}
		b.WriteRune(r)
	}
	return strings.TrimSpace(b.String())
}
