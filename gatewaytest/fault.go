package gatewaytest

import (
	"fmt"
	"time"
)

// Kind is what a Fault does to one request.
type Kind int

// The kinds of fault. The status faults answer before the model is called;
// the stream faults call the model and act on its response after a number of
// complete events.
//
// What counts as an event depends on the response's Content-Type. In a
// text/event-stream, a block of lines ended by an empty line (line ends LF,
// CR or CRLF) that has a data field: the blocks an SSE client dispatches.
// Comments such as ": keep-alive", and blocks of retry, id or event fields
// alone, are forwarded but not counted. In JSON lines (application/x-ndjson
// and the like) or a JSON body streamed a line at a time (application/json),
// each line with content. In any other body, each block of lines ended by an
// empty line. A stream fault's model runs with no Content-Length (the gateway
// drops one the model sets, as a proxy that re-chunks the body does), and a
// 1xx the model sends (103 Early Hints) is passed on before its final
// status.
const (
	KindPass            Kind = iota // forward to the model unchanged
	KindStatus                      // answer Status with Body; the model is not called
	KindUnreachable                 // 502 {"error": "Error making prediction"}
	KindClientClosed                // 502 {"error": "client closed connection"}
	KindDraining                    // 503 draining, with Retry-After when its wait is positive
	KindGatewayTimeout              // 504 after Delay (or when the client leaves)
	KindPayloadTooLarge             // 413 with the platform's size message, whatever the body's size
	KindRateLimited                 // 429, with Retry-After when its wait is positive
	KindCut                         // After events, then half an event, then the connection cut mid-chunk (HTTP/1.0: a clean close)
	KindEndEarly                    // After events, then a clean end without the terminal event
	KindStall                       // After events, then silence until the client leaves or the server closes
	KindReset                       // After events, then an HTTP/2 RST_STREAM (HTTP/1: the connection closed)
)

// Fault is one scripted behaviour of the gateway for one request. Build one
// with the functions below, the one way to make one; the zero Fault passes
// the request through. Kind and String say what it does.
type Fault struct {
	kind       Kind
	status     int           // KindStatus: the status to answer
	body       string        // KindStatus: the body; Content-Type is JSON when it starts with '{', else HTML when it starts with '<', else text
	retryAfter time.Duration // KindDraining, KindRateLimited: when positive, sent as Retry-After (seconds, rounded up) and Retry-After-Ms (exact)
	delay      time.Duration // KindGatewayTimeout: how long the gateway waits before its 504
	after      int           // stream faults: complete events forwarded before the fault
}

// Kind returns what the fault does.
func (f Fault) Kind() Kind { return f.kind }

// After returns how many complete events a stream fault forwards before it
// acts.
func (f Fault) After() int { return f.after }

// Pass forwards the request to the model unchanged.
func Pass() Fault { return Fault{kind: KindPass} }

// Status answers status with body without calling the model: a proxy's HTML
// 502 page, a model's own 500, anything not covered below. status must be a
// final status net/http can send, 200 to 999: Status panics on any other, as
// the mistake in a test's setup that it is (a 1xx is informational, never an
// answer).
func Status(status int, body string) Fault {
	if status < 200 || status > 999 {
		panic(fmt.Sprintf("gatewaytest: Status(%d, ...): the status must be a final one, 200 to 999", status))
	}
	return Fault{kind: KindStatus, status: status, body: body}
}

// Unreachable answers 502 {"error": "Error making prediction"}: the model's
// container crashed, restarted or was OOMKilled.
func Unreachable() Fault { return Fault{kind: KindUnreachable} }

// ClientClosed answers 502 {"error": "client closed connection"}, as the
// platform reports a client that disconnected first.
func ClientClosed() Fault { return Fault{kind: KindClientClosed} }

// Draining answers 503 as a replica that is shutting down does, asking to
// retry on another instance. A positive retryAfter is sent as Retry-After in
// whole seconds, rounded up (a wait under a second is 1), and as
// Retry-After-Ms, exact; zero or less sends neither header.
func Draining(retryAfter time.Duration) Fault {
	return Fault{kind: KindDraining, retryAfter: retryAfter}
}

// GatewayTimeout answers 504 after delay, as the gateway does when a
// prediction outlives the request timeout. It answers sooner if the client
// leaves or the server closes.
func GatewayTimeout(delay time.Duration) Fault {
	return Fault{kind: KindGatewayTimeout, delay: delay}
}

// PayloadTooLarge answers 413 with the platform's message for the request's
// real body size, as if the body were over the limit. Bodies over
// Gateway.MaxBody get this answer without a script.
func PayloadTooLarge() Fault { return Fault{kind: KindPayloadTooLarge} }

// RateLimited answers 429, as load shedding does. A positive retryAfter is
// sent as Retry-After and Retry-After-Ms, as Draining sends it; zero or less
// sends neither header.
func RateLimited(retryAfter time.Duration) Fault {
	return Fault{kind: KindRateLimited, retryAfter: retryAfter}
}

// Cut forwards the model's first after events (see Kind for what counts),
// then the first half of the next one, then cuts the connection in the
// middle of an HTTP/1.1 chunk (no terminating chunk; the client reads
// io.ErrUnexpectedEOF). Over HTTP/2 the stream is reset instead. This is what
// a model crash or a gateway timeout mid-stream looks like to a client. An
// HTTP/1.0 client cannot see a cut: its response ends with the connection,
// so the half event is followed by what reads as a clean end. When the model
// writes no more than after events, the cut follows them; so it does when
// the model's next write does not come within half a second of the cut's
// point (a model thinking, or waiting on its context). An SSE heartbeat
// (comment lines) after the point is dropped: the half is an event's.
func Cut(after int) Fault { return Fault{kind: KindCut, after: after} }

// EndEarly forwards the model's first after events and then ends the
// response cleanly, without the rest and without the dialect's terminal
// event: a truncation only a dialect-aware client can see. When the model
// writes no more than after events (its terminal one included), EndEarly
// changes nothing: the whole stream is forwarded.
func EndEarly(after int) Fault { return Fault{kind: KindEndEarly, after: after} }

// Stall forwards the model's first after events and then sends nothing, with
// the connection open, until the client leaves or the server closes; then the
// response is aborted. When the model writes no more than after events, the
// stall follows all of them.
func Stall(after int) Fault { return Fault{kind: KindStall, after: after} }

// Reset forwards the model's first after events and then resets the stream:
// RST_STREAM with INTERNAL_ERROR over HTTP/2, the connection closed without
// the terminating chunk over HTTP/1.1. When the model writes no more than
// after events, the reset follows all of them.
func Reset(after int) Fault { return Fault{kind: KindReset, after: after} }

func (f Fault) String() string {
	switch f.kind {
	case KindPass:
		return "pass"
	case KindStatus:
		return fmt.Sprintf("%d", f.status)
	case KindUnreachable:
		return "502 unreachable"
	case KindClientClosed:
		return "502 client closed"
	case KindDraining:
		return "503 draining"
	case KindGatewayTimeout:
		return "504 timeout"
	case KindPayloadTooLarge:
		return "413 too large"
	case KindRateLimited:
		return "429 rate limited"
	case KindCut:
		return fmt.Sprintf("cut after %d", f.after)
	case KindEndEarly:
		return fmt.Sprintf("end after %d", f.after)
	case KindStall:
		return fmt.Sprintf("stall after %d", f.after)
	case KindReset:
		return fmt.Sprintf("reset after %d", f.after)
	}
	return fmt.Sprintf("fault(%d)", int(f.kind))
}

// streamFault reports whether f acts on the model's response.
func (f Fault) streamFault() bool {
	return f.kind == KindCut || f.kind == KindEndEarly || f.kind == KindStall || f.kind == KindReset
}
