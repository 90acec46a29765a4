package tracing

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/streamguard/streamguard"
	"github.com/streamguard/streamguard/internal/respwriter"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

// NewHandler returns a handler that runs h inside a SERVER span, child of the
// trace context extracted from the request's headers, and ends the span in a
// defer when h returns, so that it lasts the whole response stream and a
// panic is still recorded.
//
// The span follows the stable HTTP server semantic conventions
// (http.request.method, url.path, url.query with its values redacted,
// url.scheme, server.address, server.port, client.address,
// user_agent.original, network.protocol.version, http.route from the
// ServeMux pattern (of a mux outside NewHandler, or of one it wraps
// directly), http.response.status_code, error.type) and is tagged with
// streamguard.error.source and streamguard.error.reason when the request
// failed:
//
//   - a panic in h: source model, reason model_error, status Error, with an
//     exception event and its stack; the panic then continues, so net/http
//     (or an outer recoverer) still sees it. panic(http.ErrAbortHandler),
//     the deliberate abort of a response, is reason truncated after the
//     header (model_error before it) and is not given an exception event;
//   - the client went away (a write or flush error, or the request's context
//     canceled with a cause other than streamguard.ErrBudgetExceeded):
//     source client, reason canceled, not a server error (no error.type,
//     status unset);
//   - the request budget expired (the context's cause is
//     streamguard.ErrBudgetExceeded): source platform, reason timeout;
//   - a 5xx status: classified by streamguard.Classify from its status and
//     headers, status Error, error.type the reason; a 4xx status gets its
//     source and reason but, as the conventions say for servers, is not an
//     error of the span (no error.type).
//
// A response that fails after its 200 keeps http.response.status_code 200
// and carries error.type (the reason) and the source. A handler that knows
// better calls Annotate with trace.SpanFromContext(r.Context()); NewHandler
// then keeps the handler's classification (a panic still overrides it).
//
// h receives a ResponseWriter that keeps Flush, FlushError (returning the
// real error), Hijack, SetReadDeadline, SetWriteDeadline, EnableFullDuplex
// and Unwrap: http.ResponseController works through it. When the span is not
// recording and the metrics record nothing, h receives the original
// ResponseWriter.
//
// With Config.PublicEndpoint (or PublicEndpointFn true for the request) the
// span is the root of a new trace, linked to the incoming trace context
// instead of being its child. A request the Config's Filter rejects is
// served by h as it is, without a span.
func NewHandler(h http.Handler, cfg Config) http.Handler {
	return &handler{h: h, settings: newSettings(cfg, false)}
}

type handler struct {
	h http.Handler
	settings
}

// serverSpan is the span NewHandler puts in the handler's context: the SDK's
// span, plus what Annotate said about the request, so that NewHandler does
// not overwrite it. (A child span's parent is read through SpanContext, so
// children work as before; the SDK's count of child spans on its own span
// type does not see through the wrapper.)
type serverSpan struct {
	trace.Span
	annotation atomic.Pointer[streamguard.Error] // the last Annotate, or nil
	req        *http.Request                     // whose secrets Annotate scrubs
}

// ServeHTTP implements http.Handler.
func (hd *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if hd.skip(r) {
		hd.h.ServeHTTP(w, r)
		return
	}
	start := time.Now()
	method, original := normalizeMethod(r.Method)
	ctx := hd.prop.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
	name := spanName(method)
	if route := routeOf(r.Pattern); route != "" {
		// A ServeMux outside NewHandler already matched the request.
		name += " " + route
	}
	opts := []trace.SpanStartOption{
		trace.WithSpanKind(trace.SpanKindServer),
		trace.WithTimestamp(start),
		trace.WithAttributes(serverAttrs(r, method, original)...),
	}
	if hd.isPublic(r) {
		opts = append(opts, publicRoot(ctx)...)
	}
	ctx, span := hd.tracer.Start(ctx, hd.name(name, r), opts...)
	inst := hd.inst
	if !inst.enabled(ctx) {
		inst = nil
	}
	if !span.IsRecording() && inst == nil {
		defer span.End()
		hd.h.ServeHTTP(w, r.WithContext(ctx))
		return
	}

	ss := &serverSpan{Span: span, req: r}
	// The server stack's own writer records what the span needs: wrap only
	// a writer that does not.
	rw, ok := w.(respwriter.Recorder)
	if !ok {
		rw = respwriter.New(w)
	}
	r2 := r.WithContext(trace.ContextWithSpan(ctx, ss))
	defer func() {
		p := recover()
		hd.finish(ss, inst, rw, r, r2, start, method, p)
		if p != nil {
			panic(p)
		}
	}()
	hd.h.ServeHTTP(rw, r2)
}

// finish tags and ends the span after h returned or panicked with p.
func (hd *handler) finish(ss *serverSpan, inst *instruments, rw respwriter.Recorder, r, r2 *http.Request, start time.Time, method string, p any) {
	status := rw.Status()
	if status == 0 && p == nil && !rw.Hijacked() {
		status = http.StatusOK // net/http sends 200 for a handler that wrote nothing
	}

	se, applied := failureOf(ss, rw, r, status, p)
	verdict := VerdictComplete
	errType := ""
	switch {
	case se == nil:
	case applied:
		verdict = string(se.Reason)
		if isError(se, true) {
			errType = errorType(se)
		}
	default:
		verdict = string(se.Reason)
		errType = applyFailure(ss.Span, se, r, true)
	}

	attrs := make([]attribute.KeyValue, 0, 6)
	if status > 0 {
		attrs = append(attrs, semconv.HTTPResponseStatusCode(status))
	}
	// A ServeMux inside NewHandler sets the pattern on the request it was
	// given (r2); one outside set it on r before NewHandler ran. A wrapper
	// between NewHandler and the mux that copies the request hides it.
	route := routeOf(r2.Pattern)
	if route != "" && r2.Pattern != r.Pattern {
		ss.Span.SetName(hd.name(spanName(method)+" "+route, r2))
	}
	if route != "" {
		attrs = append(attrs, semconv.HTTPRoute(route))
	}
	first := -1.0
	if !rw.Hijacked() {
		attrs = append(attrs, attribute.String(AttrStreamVerdict, verdict), attribute.Int64(AttrStreamBytes, rw.Written()))
		if t := rw.FirstWrite(); !t.IsZero() {
			first = max(0, t.Sub(start).Seconds())
			attrs = append(attrs, attribute.Float64(AttrTimeToFirstByte, first))
		}
	}
	ss.Span.SetAttributes(attrs...)

	// The metrics first: whoever waits for the span sees them recorded.
	if inst != nil {
		base := make([]attribute.KeyValue, 0, 3)
		base = append(base, semconv.HTTPRequestMethodKey.String(method), semconv.URLScheme(scheme(r)))
		if route != "" {
			base = append(base, semconv.HTTPRoute(route))
		}
		o := outcome{base: base, status: status, proto: protocolVersion(r.ProtoMajor, r.ProtoMinor),
			errorType: errType, seconds: time.Since(start).Seconds(), first: first}
		if se != nil {
			o.source, o.reason = string(source(se)), string(se.Reason)
		}
		inst.record(r.Context(), o)
	}
	ss.Span.End()
}

// publicRoot are the start options of a public endpoint's span: the root of
// a new trace, linked to the incoming trace context when there is one.
func publicRoot(ctx context.Context) []trace.SpanStartOption {
	opts := []trace.SpanStartOption{trace.WithNewRoot()}
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() && sc.IsRemote() {
		opts = append(opts, trace.WithLinks(trace.Link{SpanContext: sc}))
	}
	return opts
}

// failureOf says how the request failed, if it did: a panic (p), the
// handler's own classification (applied: already on the span), the client
// gone, the handler's abort, or an error status. Nothing is known of a
// hijacked connection.
func failureOf(ss *serverSpan, rw respwriter.Recorder, r *http.Request, status int, p any) (se *streamguard.Error, applied bool) {
	switch {
	case p != nil && p != http.ErrAbortHandler:
		ss.RecordError(panicError{msg: scrub(fmt.Sprint("panic: ", p), r), v: p}, trace.WithStackTrace(true))
		return &streamguard.Error{
			Source:  streamguard.SourceModel,
			Reason:  streamguard.ReasonModelError,
			Message: streamguard.Sanitize(fmt.Sprint("panic: ", p), streamguard.MaxMessage),
		}, false
	case ss.annotation.Load() != nil:
		return ss.annotation.Load(), true
	case rw.Hijacked():
		return nil, false
	}
	if se := clientGone(r.Context(), rw); se != nil {
		return se, false
	}
	if p == http.ErrAbortHandler || rw.Aborting() {
		reason := streamguard.ReasonModelError
		if rw.WroteHeader() {
			reason = streamguard.ReasonTruncated
		}
		return &streamguard.Error{Source: streamguard.SourceModel, Reason: reason, Message: "the handler aborted the response"}, false
	}
	if status >= 400 {
		return streamguard.Classify(&http.Response{StatusCode: status, Header: rw.Header()}, nil), false
	}
	return nil, false
}

// clientGone says whether the request failed on the client's side of the
// connection: its context ended (the client disconnected or reset the
// stream), or a write or flush failed. A context ended by the request budget
// (cause streamguard.ErrBudgetExceeded) is the platform's timeout instead.
func clientGone(ctx context.Context, rw respwriter.Recorder) *streamguard.Error {
	if ctx.Err() != nil {
		if cause := context.Cause(ctx); errors.Is(cause, streamguard.ErrBudgetExceeded) {
			return streamguard.FromError(cause)
		}
		return &streamguard.Error{Source: streamguard.SourceClient, Reason: streamguard.ReasonCanceled,
			Message: "the client went away", Err: context.Cause(ctx)}
	}
	switch err := rw.Err(); {
	case err == nil, errors.Is(err, http.ErrBodyNotAllowed), errors.Is(err, http.ErrHijacked):
		// Nothing failed, or the body was discarded as HTTP requires.
		return nil
	case errors.Is(err, http.ErrContentLength):
		// The handler wrote more than it declared: its own bug.
		return &streamguard.Error{Source: streamguard.SourceModel, Reason: streamguard.ReasonModelError,
			Message: streamguard.Sanitize(err.Error(), streamguard.MaxMessage), Err: err}
	default:
		return &streamguard.Error{Source: streamguard.SourceClient, Reason: streamguard.ReasonCanceled,
			Message: "the client went away: " + streamguard.Sanitize(err.Error(), streamguard.MaxMessage), Err: err}
	}
}

// panicError carries a recovered panic value as an error for the exception
// event, its message scrubbed of the request's secrets.
type panicError struct {
	msg string
	v   any
}

func (e panicError) Error() string { return e.msg }

func (e panicError) Unwrap() error {
	err, _ := e.v.(error)
	return err
}

// serverAttrs are the span's attributes known when the request arrives.
func serverAttrs(r *http.Request, method, original string) []attribute.KeyValue {
	attrs := make([]attribute.KeyValue, 0, 12)
	attrs = append(attrs, semconv.HTTPRequestMethodKey.String(method))
	if original != "" {
		attrs = append(attrs, semconv.HTTPRequestMethodOriginal(original))
	}
	sch := scheme(r)
	attrs = append(attrs, semconv.URLScheme(sch), semconv.URLPath(r.URL.Path))
	if r.URL.RawQuery != "" {
		attrs = append(attrs, semconv.URLQuery(redactQuery(r.URL.RawQuery)))
	}
	if host, port := hostPort(r.Host, sch); host != "" {
		attrs = append(attrs, semconv.ServerAddress(host))
		if port > 0 {
			attrs = append(attrs, semconv.ServerPort(port))
		}
	}
	if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		attrs = append(attrs, semconv.ClientAddress(host))
	}
	if ua := r.UserAgent(); ua != "" {
		attrs = append(attrs, semconv.UserAgentOriginal(ua))
	}
	if v := protocolVersion(r.ProtoMajor, r.ProtoMinor); v != "" {
		attrs = append(attrs, semconv.NetworkProtocolVersion(v))
	}
	if route := routeOf(r.Pattern); route != "" {
		attrs = append(attrs, semconv.HTTPRoute(route))
	}
	return attrs
}

func scheme(r *http.Request) string {
	if r.TLS != nil {
		return "https"
	}
	return "http"
}

// routeOf turns a ServeMux pattern ("POST example.com/v1/{model}") into the
// http.route it names ("/v1/{model}").
func routeOf(pattern string) string {
	if i := strings.IndexByte(pattern, ' '); i >= 0 {
		pattern = strings.TrimLeft(pattern[i+1:], " \t")
	}
	if i := strings.IndexByte(pattern, '/'); i > 0 {
		pattern = pattern[i:]
	}
	return pattern
}
