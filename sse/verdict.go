package sse

import (
	"bytes"
	"context"
	"io"
	"strconv"

	"github.com/streamguard/streamguard"
	"github.com/streamguard/streamguard/internal/ctxcause"
	"github.com/streamguard/streamguard/internal/redact"
)

// finish turns the upstream's last error into the stream's verdict.
func (b *body) finish() {
	b.finished.Store(true)
	if b.rs != nil {
		b.rs.end()
		// The resumes' context is done with: release it now, not at
		// Close, which a caller that reads to the end may never call.
		b.rsCancel()
	}
	if b.timer != nil {
		b.timer.Stop()
	}
	v := b.verdict()
	b.r, b.ready, b.w = 0, 0, 0
	b.buf = nil
	if v == nil {
		b.final = io.EOF
		return
	}
	if b.rs != nil {
		b.annotateResume(v)
	}
	b.final = v
	if b.cfg.FailureEvent && b.isSSE {
		var start []byte
		if b.endCR {
			start = []byte{'\n'} // the line end the cut parted from its CR (see splice)
		}
		b.frame = AppendFailureFrame(start, v)
	} else if b.cfg.FailureEvent && b.lines != nil {
		b.frame = b.lines.failureRecord(v)
	}
}

// verdict decides how the stream ended, in the order of the documented stream
// verdicts. nil means success.
func (b *body) verdict() *streamguard.Error {
	up := b.upErr
	switch {
	case b.rs != nil && b.rs.mismatch:
		return b.mismatchVerdict()
	case b.inband != nil:
		e := *b.inband
		e.Err = ErrInBand
		return b.stamp(&e)
	case b.terminal:
		return nil
	case b.stalled.Load():
		return b.fail(streamguard.SourcePlatform, streamguard.ReasonStalled, ErrIdleTimeout,
			b.stallMessage())
	case b.closed.Load():
		return b.fail(streamguard.SourceClient, streamguard.ReasonCanceled, ErrClosed, "the body was closed before its end")
	case b.ctx.Err() != nil:
		cause := context.Cause(b.ctx)
		e := streamguard.FromError(cause)
		if ctxcause.Callers(cause) {
			// A cause of the caller's own making (even a failure: an
			// errgroup cancels with a sibling's): its cancellation, or
			// its deadline, the cause kept in the chain.
			e = streamguard.FromError(b.ctx.Err())
		}
		return b.fail(e.Source, e.Reason, cause, e.Message)
	case b.tooLarge:
		return b.fail(streamguard.SourceModel, streamguard.ReasonEventTooLarge, ErrEventTooLarge,
			b.aUnit()+" exceeded "+strconv.Itoa(b.maxEvent)+" bytes")
	case up != io.EOF:
		e := b.fail(streamguard.SourceNetwork, streamguard.ReasonTruncated, up, streamguard.Sanitize(up.Error(), streamguard.MaxMessage))
		e.Retryable = true
		return e
	case (b.isSSE || b.lines != nil && b.lines.kind != framingArray) && b.events == 0 && !b.cutFirst():
		return b.noEvents()
	case b.w > b.ready:
		e := b.fail(streamguard.SourcePlatform, streamguard.ReasonTruncated, ErrPartialEvent, "stream ended in the middle of "+b.aUnit())
		e.Retryable = true
		return e
	case b.lines != nil && b.lines.unclosed():
		e := b.fail(streamguard.SourcePlatform, streamguard.ReasonTruncated, ErrNoTerminal, "the streamed JSON array ended without its closing ]")
		e.Retryable = true
		return e
	case b.dialect > 0 && !b.terminal:
		e := b.fail(streamguard.SourcePlatform, streamguard.ReasonTruncated, ErrNoTerminal,
			"the "+b.dialectName(b.dialect)+" stream ended without its terminal event")
		e.Retryable = true
		return e
	}
	return nil
}

// cutFirst reports whether the bytes held back at the end of a body without
// events are the start of its first event or JSON line, cut (truncated),
// rather than a body of something else (no_events).
func (b *body) cutFirst() bool {
	held := bytes.TrimLeft(b.buf[b.ready:b.w], "\ufeff \t\r\n\x1e")
	if b.lines != nil {
		return len(held) > 0 && (held[0] == '{' || held[0] == '[')
	}
	for len(held) > 0 && held[0] == ':' { // the comment lines the block starts with: each pass takes one
		i := bytes.IndexAny(held, "\r\n")
		if i < 0 {
			return false
		}
		held = bytes.TrimLeft(held[i:], "\r\n")
	}
	for _, f := range [...]string{"data:", "event:", "id:", "retry:"} {
		if bytes.HasPrefix(held, []byte(f)) {
			return true
		}
	}
	return false
}

// dialectName names dialect (1 + its index, as b.dialect holds it) among
// the stream's dialects, or "" for none.
func (b *body) dialectName(dialect int) string {
	ds := b.cfg.Dialects
	if ds == nil && b.lines != nil {
		if dialect > 0 && dialect <= len(lineDialects) {
			return lineDialects[dialect-1]
		}
		return ""
	}
	if ds == nil {
		ds = DefaultDialects()
	}
	if dialect > 0 && dialect <= len(ds) {
		return ds[dialect-1].Name
	}
	return ""
}

func (b *body) fail(src streamguard.Source, reason streamguard.Reason, cause error, msg string) *streamguard.Error {
	return b.stamp(&streamguard.Error{Source: src, Reason: reason, Message: msg, Err: cause})
}

// stamp fills in what the stream knows of itself.
func (b *body) stamp(e *streamguard.Error) *streamguard.Error {
	e.StatusCode = b.status
	e.RequestID = streamguard.RequestID(b.header)
	e.Events = b.events
	e.Bytes = b.bytes
	e.LastEventID = streamguard.Sanitize(string(b.lastID), maxIDBytes)
	return e
}

// headBytes is how much of a body's start the guard keeps to say what a
// stream without events carried.
const headBytes = 24

// keepHead keeps the first headBytes of the body: one comparison per read
// once they are kept.
func (b *body) keepHead(p []byte) {
	if b.headN < len(b.head) {
		b.headN += copy(b.head[b.headN:], p)
	}
}

// noEvents is the verdict on a 2xx event stream (or JSON stream) that
// ended cleanly without a single event (or record). Its Code names what it carried, from its first bytes:
// "html", "json", "text", "comments" or "empty". The quoted start is
// sanitized and scrubbed of the request's secrets and key shapes, less a
// token the cut may have split.
func (b *body) noEvents() *streamguard.Error {
	head := bytes.TrimLeft(b.head[:b.headN], "\ufeff \t\r\n")
	code, what := "empty", "an empty body"
	switch {
	case len(head) == 0:
	case head[0] == '<':
		code, what = "html", "HTML markup"
	case head[0] == '{' || head[0] == '[':
		code, what = "json", "JSON"
	case head[0] == ':':
		code, what = "comments", "only comments"
	default:
		code, what = "text", "text that is not an event stream"
	}
	msg := "the 200 event stream ended without any event; it carried " + what
	if b.lines != nil {
		if code == "text" {
			what = "text that is not JSON"
		}
		msg = "the 200 JSON stream ended without any " + b.unit() + "; it carried " + what
	}
	if code == "html" || code == "json" || code == "text" {
		if b.headN == len(b.head) {
			head = redact.DropCut(head, redact.Secrets(b.req)) // the body went on: a key's start would survive the scrub
		}
		if q := streamguard.Sanitize(redact.Request(string(head), b.req), headBytes); q != "" {
			msg += ": " + strconv.Quote(q)
		}
	}
	e := b.fail(streamguard.SourcePlatform, streamguard.ReasonNoEvents, ErrNoEvents, msg)
	e.Code = code
	e.Retryable = code == "empty" || code == "comments"
	return e
}
