package tracing

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/streamguard/streamguard"
	"github.com/streamguard/streamguard/internal/ctxkey"
	"github.com/streamguard/streamguard/internal/streamstat"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

// NewTransport returns a RoundTripper that starts a CLIENT span for each
// request it sends through base (nil: http.DefaultTransport), injects the
// trace context into the request's headers, and ends the span when the
// response body reaches its end, fails, or is closed, whichever comes first,
// exactly once: never when the headers arrive, so a stream's span lasts the
// whole stream. A response without a body (HEAD, 204, 304) and a 101 upgrade
// end the span at once.
//
// The span follows the stable HTTP client semantic conventions
// (http.request.method, url.full with its userinfo and query values
// redacted, server.address, server.port, http.response.status_code,
// network.protocol.version, error.type) and adds http.request.resend_count on
// a retry layer's resends. Every failure is tagged with error.type,
// streamguard.error.source and streamguard.error.reason, error.type being the
// reason: an error status (classified with streamguard.Check, which leaves
// the body readable), a round trip that obtained no response, or a body that
// failed after its 2xx. When the body is a stream guard's (it implements
// streamstat.Reporter), the guard's *streamguard.Error and stream statistics
// are used; otherwise a read error after the 2xx headers that is not the
// caller's is a truncation (source network), and a clean EOF is success. The
// caller's own cancellation is recorded (source client, reason canceled)
// without error.type or an error status.
//
// No request header is recorded, and messages are scrubbed of the request's
// credential query values (by name, and any value of 16 bytes or more),
// userinfo and credential headers (Authorization, Api-Key, cookies, any
// *-Key).
//
// When the span is not recording and the metrics record nothing (turned
// off, or a MeterProvider with no reader), the response is returned as base
// gave it: no-op providers cost the span's start and the header injection,
// nothing per read. A request the Config's Filter rejects is sent through
// base as it is.
//
// The returned RoundTripper is safe for concurrent use if base is, and
// forwards CloseIdleConnections to base.
func NewTransport(base http.RoundTripper, cfg Config) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	return &transport{base: base, settings: newSettings(cfg, true)}
}

type transport struct {
	base http.RoundTripper
	settings
}

// CloseIdleConnections closes base's idle connections, if it has any.
func (t *transport) CloseIdleConnections() {
	if c, ok := t.base.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

// RoundTrip implements http.RoundTripper. It does not modify req: the trace
// context goes into a copy of its headers.
func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if t.skip(req) {
		return t.base.RoundTrip(req)
	}
	method, original := normalizeMethod(req.Method)
	ctx, span := t.tracer.Start(req.Context(), t.name(spanName(method), req), spanKindClient,
		trace.WithAttributes(clientAttrs(req, method, original)...))
	// Taken after the span's own start time, so that the times to the
	// first byte and event never exceed the span.
	start := time.Now()

	r := req.WithContext(ctx)
	t.prop.Inject(ctx, &headerCopier{req: r})

	resp, err := t.base.RoundTrip(r)
	inst := t.inst
	if !inst.enabled(ctx) {
		inst = nil
	}
	if !span.IsRecording() && inst == nil {
		span.End()
		return resp, err
	}

	c := &call{span: span, inst: inst, req: r, start: start}
	if inst != nil {
		c.metricBase = clientMetricAttrs(req, method)
	}
	if err != nil {
		c.fail = roundTripFailure(req.Context(), err)
		c.end(nil, endNoBody)
		return resp, err
	}

	// What the header says goes on the span with the rest, when it ends:
	// one call into the SDK per span, not two.
	c.status = resp.StatusCode
	c.proto = protocolVersion(resp.ProtoMajor, resp.ProtoMinor)
	if id := streamguard.RequestID(resp.Header); id != "" {
		c.requestID = scrub(id, req) // a server may echo the key as its ID
	}

	rep, _ := resp.Body.(streamstat.Reporter)
	if resp.StatusCode >= 400 {
		// The headers came: a header timeout above (the retry layer's)
		// must not cut the error body's read short.
		ctxkey.HeadersArrived(req.Context())
		var se *streamguard.Error
		if errors.As(streamguard.Check(resp), &se) {
			c.fail = se
			rep = nil // Check replaced the body; an error body is not a stream
		}
	}
	switch {
	case resp.StatusCode == http.StatusSwitchingProtocols:
		// The body is the upgraded connection, an io.ReadWriteCloser that
		// must not be wrapped; it may live for hours.
		c.end(nil, endUpgrade)
	case resp.Body == nil || resp.Body == http.NoBody:
		c.end(nil, endNoBody)
	case rep != nil:
		c.rc, c.rep = resp.Body, rep
		resp.Body = reporterBody{c}
	default:
		c.rc = resp.Body
		resp.Body = c
	}
	return resp, nil
}

// spanKindClient is the start option of every client span, made once.
var spanKindClient = trace.WithSpanKind(trace.SpanKindClient)

// headerCopier is the propagation carrier of an attempt's request: it copies
// the caller's headers on the first Set, so that the caller's request is
// never modified, and a propagator that injects nothing (the default no-op
// one, or a span that is not sampled with no baggage) costs no copy.
type headerCopier struct {
	req    *http.Request
	copied bool
}

func (c *headerCopier) Get(key string) string { return c.req.Header.Get(key) }

func (c *headerCopier) Set(key, value string) {
	if !c.copied {
		// A shallow copy: the layers beneath must not modify the request,
		// and each value slice is capped so that even an append cannot
		// reach the caller's array.
		h := make(http.Header, len(c.req.Header)+2)
		for k, v := range c.req.Header {
			h[k] = v[:len(v):len(v)]
		}
		c.req.Header, c.copied = h, true
	}
	c.req.Header.Set(key, value)
}

func (c *headerCopier) Keys() []string { return propagation.HeaderCarrier(c.req.Header).Keys() }

// roundTripFailure classifies the error of a round trip that obtained no
// response.
func roundTripFailure(ctx context.Context, err error) *streamguard.Error {
	var se *streamguard.Error
	if errors.As(err, &se) {
		return withContext(ctx, se)
	}
	if ctx.Err() != nil {
		return contextFailure(ctx)
	}
	return streamguard.FromError(err)
}

// bodyFailure classifies a read error of a response body after its 2xx
// headers. A guard's *streamguard.Error is used as it is; a failure of the
// caller's context is the caller's (or the budget's); anything else cut the
// stream short: source network, reason truncated.
func bodyFailure(ctx context.Context, err error) *streamguard.Error {
	var se *streamguard.Error
	if errors.As(err, &se) {
		return withContext(ctx, se)
	}
	if ctx.Err() != nil {
		return contextFailure(ctx)
	}
	se = streamguard.FromError(err)
	if se.Source == streamguard.SourceNetwork {
		// io.ErrUnexpectedEOF, an HTTP/2 RST_STREAM or GOAWAY, a reset
		// connection: after the 2xx, each of them truncates the stream.
		se.Reason = streamguard.ReasonTruncated
	}
	return se
}

// contextFailure classifies the end of the caller's context: the request
// budget's expiry (ErrBudgetExceeded as its cause) is the platform's
// timeout, a layer's own failure as its cause is that failure (the retry
// layer's header timeout); anything else is the caller's cancellation or
// deadline. HTTP/2 returns the bare ctx.Err() without its cause, so the
// cause is read from the context itself.
func contextFailure(ctx context.Context) *streamguard.Error {
	cause := context.Cause(ctx)
	if cause == streamguard.ErrBudgetExceeded { // bare: one that wraps it is a caller's (errgroup)
		return streamguard.FromError(cause)
	}
	if se := layerCause(cause); se != nil {
		return se
	}
	return streamguard.FromError(ctx.Err())
}

// layerCause is the failure a layer above ended the context with, its own
// classification (the retry layer's header timeout: the platform's), or
// nil for any other cause: a caller's own, even a *streamguard.Error (an
// errgroup cancels with a sibling's failure), is its cancellation.
func layerCause(cause error) *streamguard.Error {
	var se *streamguard.Error
	if f := ctxkey.LayerFailure(cause); f != nil && errors.As(f, &se) {
		return se
	}
	return nil
}

// withContext corrects a client-sourced *Error whose context's cause says the
// request budget expired (the HTTP/2 transport loses that cause), or holds
// a layer's own failure (layerCause); and one that is the context's cause
// itself, which the context classifies.
func withContext(ctx context.Context, se *streamguard.Error) *streamguard.Error {
	if ctx.Err() == nil {
		return se
	}
	cause := context.Cause(ctx)
	if errors.Is(cause, se) {
		// net/http returns the context's cause as the request's error: a
		// failure someone canceled the context with (a sibling's, through
		// errgroup; the retry layer's header timeout), not this request's.
		return contextFailure(ctx)
	}
	if se.Source != streamguard.SourceClient {
		return se
	}
	if cause == streamguard.ErrBudgetExceeded {
		c := *se
		c.Source, c.Reason, c.Retryable = streamguard.SourcePlatform, streamguard.ReasonTimeout, false
		return &c
	}
	if lc := layerCause(cause); lc != nil {
		return lc
	}
	return se
}

// clientAttrs are the span's attributes known before the request is sent,
// where a sampler can see them.
func clientAttrs(r *http.Request, method, original string) []attribute.KeyValue {
	attrs := make([]attribute.KeyValue, 0, 7)
	attrs = append(attrs, semconv.HTTPRequestMethodKey.String(method))
	if original != "" {
		attrs = append(attrs, semconv.HTTPRequestMethodOriginal(original))
	}
	attrs = appendServer(attrs, r)
	attrs = append(attrs, semconv.URLFull(fullURL(r)))
	if n := ctxkey.Attempt(r.Context()); n > 1 {
		attrs = append(attrs, semconv.HTTPRequestResendCount(n-1))
	}
	return attrs
}

// clientMetricAttrs are the low-cardinality attributes of the client metrics.
func clientMetricAttrs(r *http.Request, method string) []attribute.KeyValue {
	attrs := make([]attribute.KeyValue, 0, 3)
	attrs = append(attrs, semconv.HTTPRequestMethodKey.String(method))
	return appendServer(attrs, r)
}

// appendServer appends server.address and server.port of the server r is
// sent to: its URL's host, or r.Host for a URL without one. An attribute
// with no value is left out rather than recorded empty.
func appendServer(attrs []attribute.KeyValue, r *http.Request) []attribute.KeyValue {
	host, port := hostPort(r.URL.Host, r.URL.Scheme)
	if host == "" {
		host, port = hostPort(r.Host, r.URL.Scheme)
	}
	if host != "" {
		attrs = append(attrs, semconv.ServerAddress(host))
	}
	if port > 0 {
		attrs = append(attrs, semconv.ServerPort(port))
	}
	return attrs
}

// knownMethods are the methods the semantic conventions name; any other is
// recorded as _OTHER, with the original in http.request.method_original, to
// keep the attribute's cardinality bounded.
var knownMethods = map[string]bool{
	"CONNECT": true, "DELETE": true, "GET": true, "HEAD": true, "OPTIONS": true,
	"PATCH": true, "POST": true, "PUT": true, "QUERY": true, "TRACE": true,
}

func normalizeMethod(m string) (method, original string) {
	if m == "" {
		return http.MethodGet, ""
	}
	if knownMethods[m] {
		return m, ""
	}
	return "_OTHER", m
}

// spanName is the method, or "HTTP" for an unknown one, as the conventions
// say when no route template is known.
func spanName(method string) string {
	if method == "_OTHER" {
		return "HTTP"
	}
	return method
}

// hostPort splits a host[:port] and fills in the scheme's default port.
func hostPort(hostport, scheme string) (string, int) {
	host, portStr := hostport, ""
	if i := lastColon(hostport); i >= 0 {
		host, portStr = hostport[:i], hostport[i+1:]
	}
	if len(host) > 1 && host[0] == '[' && host[len(host)-1] == ']' {
		host = host[1 : len(host)-1]
	}
	if portStr != "" {
		if p, err := strconv.Atoi(portStr); err == nil && p > 0 && p < 65536 {
			return host, p
		}
		return host, 0
	}
	switch scheme {
	case "https", "wss":
		return host, 443
	case "http", "ws":
		return host, 80
	}
	return host, 0
}

// lastColon returns the index of the colon before a port, or -1; the colons
// of a bracketed IPv6 address do not count.
func lastColon(s string) int {
	for i := len(s) - 1; i >= 0; i-- {
		switch s[i] {
		case ':':
			return i
		case ']':
			return -1
		}
	}
	return -1
}

func protocolVersion(major, minor int) string {
	switch {
	case major == 1 && minor == 1:
		return "1.1"
	case major == 1 && minor == 0:
		return "1.0"
	case major == 2:
		return "2"
	case major == 3:
		return "3"
	}
	return ""
}
