package tracing

import (
	"io"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/streamguard/streamguard"
	"github.com/streamguard/streamguard/internal/streamstat"
	"go.opentelemetry.io/otel/attribute"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

// call is one client attempt: its span, and the response body it wraps until
// the body's end, failure or Close ends the span.
//
// Read is not safe for concurrent use (no body is), but Close and the end of
// the span are safe against a concurrent Read: the counters are atomic and
// the end happens once, by whichever comes first.
type call struct {
	rc         io.ReadCloser       // the body beneath
	rep        streamstat.Reporter // the guard beneath, or nil
	span       trace.Span
	inst       *instruments
	req        *http.Request // the attempt's request: its context says why a read failed
	start      time.Time
	status     int                  // 0: no response
	proto      string               // network.protocol.version of the response, or ""
	requestID  string               // the response's request ID, or ""
	fail       *streamguard.Error   // an error status or a failed round trip, classified at header time
	metricBase []attribute.KeyValue // nil without metrics

	bytes     atomic.Int64
	firstByte atomic.Int64 // nanoseconds from start to the first byte; 0 until then
	closing   atomic.Bool  // Close began: a Read it cuts short ends as closed
	ended     atomic.Bool
}

// How a call ended.
type endKind int

const (
	endRead    endKind = iota // Read returned an error, io.EOF included
	endClose                  // Close before the end
	endNoBody                 // no body: nothing to wait for
	endUpgrade                // 101: the body is a connection, not a response
)

// UnwrapBody returns the body beneath, so that a layer above that
// classifies an error response finds the bytes already read for the span
// (internal/errprefix).
func (c *call) UnwrapBody() io.ReadCloser { return c.rc }

// Read reads from the body beneath, counting bytes; an error, io.EOF
// included, ends the span.
func (c *call) Read(p []byte) (int, error) {
	n, err := c.rc.Read(p)
	if n > 0 && c.bytes.Add(int64(n)) == int64(n) {
		c.firstByte.Store(max(1, int64(time.Since(c.start))))
	}
	switch {
	case err == nil:
	case err != io.EOF && c.closing.Load():
		// A Read blocked while another goroutine closed the body: the
		// caller's Close, whichever of the two ends the span first.
		c.end(nil, endClose)
	default:
		c.end(err, endRead)
	}
	return n, err
}

// Close closes the body beneath and ends the span if nothing ended it yet.
func (c *call) Close() error {
	c.closing.Store(true)
	err := c.rc.Close()
	c.end(nil, endClose)
	return err
}

// reporterBody is the wrapped body of a guarded stream: it passes the
// guard's statistics on to the layers above.
type reporterBody struct{ *call }

// StreamStats returns the guard's statistics.
func (b reporterBody) StreamStats() streamstat.Stats { return b.rep.StreamStats() }

// end tags and ends the span, once.
func (c *call) end(err error, how endKind) {
	if !c.ended.CompareAndSwap(false, true) {
		return
	}
	var stats streamstat.Stats
	if c.rep != nil {
		stats = c.rep.StreamStats()
	}

	se := c.fail
	verdict := VerdictComplete
	switch {
	case se != nil:
	case how == endRead && err != io.EOF:
		se = bodyFailure(c.req.Context(), err)
	case how == endClose && !stats.Terminal:
		verdict = VerdictClosed
	}
	errType := ""
	if se != nil {
		verdict = string(se.Reason)
		errType = applyFailure(c.span, se, c.req, false)
	}

	attrs, first := c.attrs(stats, verdict, how)
	var gen *genaiOutcome
	if stats.GenAI != nil {
		gen = &genaiOutcome{g: stats.GenAI, model: requestModel(c.req)}
		attrs = append(attrs, genaiSpanAttrs(gen.g, gen.model, c.start)...)
	}
	c.span.SetAttributes(attrs...)

	// The metrics first: whoever waits for the span sees them recorded.
	if c.inst != nil {
		o := outcome{
			base:      c.metricBase,
			status:    c.status,
			proto:     c.proto,
			errorType: errType,
			seconds:   time.Since(c.start).Seconds(),
			first:     first,
		}
		if se != nil {
			o.source, o.reason = string(source(se)), string(se.Reason)
		}
		if c.rep != nil {
			o.stats, o.guarded = stats, true
		}
		if gen != nil {
			gen.server = genaiServerAttrs(c.req)
			o.genai = gen
		}
		c.inst.record(c.req.Context(), o)
	}
	c.span.End()
}

// attrs returns the span's attributes of the response and the stream, and
// the time to the first event in seconds (-1: none). It puts the resumes
// on the span as events.
func (c *call) attrs(stats streamstat.Stats, verdict string, how endKind) ([]attribute.KeyValue, float64) {
	attrs := make([]attribute.KeyValue, 0, 11)
	if c.status > 0 {
		attrs = append(attrs, semconv.HTTPResponseStatusCode(c.status))
	}
	if c.proto != "" {
		attrs = append(attrs, semconv.NetworkProtocolVersion(c.proto))
	}
	if c.requestID != "" {
		attrs = append(attrs, attribute.String(AttrRequestID, c.requestID))
	}
	first := -1.0
	if how != endUpgrade {
		n := c.bytes.Load()
		attrs = append(attrs, attribute.String(AttrStreamVerdict, verdict), attribute.Int64(AttrStreamBytes, n))
		if d := c.firstByte.Load(); d > 0 {
			attrs = append(attrs, attribute.Float64(AttrTimeToFirstByte, time.Duration(d).Seconds()))
		}
	}
	if c.rep != nil {
		attrs = append(attrs, attribute.Int64(AttrStreamEvents, stats.Events), attribute.Bool(AttrStreamTerminal, stats.Terminal))
		if stats.Dialect != "" {
			attrs = append(attrs, attribute.String(AttrStreamDialect, stats.Dialect))
		}
		if !stats.FirstEvent.IsZero() {
			first = max(0, stats.FirstEvent.Sub(c.start).Seconds())
			attrs = append(attrs, attribute.Float64(AttrTimeToFirstEvent, first))
		}
		if len(stats.Resumes) > 0 {
			attrs = append(attrs, attribute.Int(AttrStreamResumes, len(stats.Resumes)))
			addResumeEvents(c.span, stats.Resumes, c.req)
		}
	}
	return attrs, first
}

// addResumeEvents puts one EventResume on span for each resume the guard
// tried, at the time it was sent; its error is scrubbed of r's secrets once
// more, though the guard scrubbed it already.
func addResumeEvents(span trace.Span, resumes []streamstat.Resume, r *http.Request) {
	for i, rs := range resumes {
		attrs := append(resumeAttrs(rs), semconv.HTTPRequestResendCount(i+1))
		if rs.StatusCode > 0 {
			attrs = append(attrs, semconv.HTTPResponseStatusCode(rs.StatusCode))
		}
		if rs.Err != "" {
			attrs = append(attrs, attribute.String(AttrResumeError, scrub(rs.Err, r)))
		}
		opts := []trace.EventOption{trace.WithAttributes(attrs...)}
		if !rs.At.IsZero() {
			opts = append(opts, trace.WithTimestamp(rs.At))
		}
		span.AddEvent(EventResume, opts...)
	}
}
