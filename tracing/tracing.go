package tracing

import (
	"net/http"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

// Config configures the spans and metrics of NewTransport and NewHandler. The
// zero value is ready to use: spans go to the otel global TracerProvider,
// metrics to the otel global MeterProvider, trace context travels with the
// otel global propagator, every request is traced, spans are named as the
// HTTP semantic conventions say, and a server's incoming trace context is the
// parent of its span.
type Config struct {
	// TracerProvider creates the spans. Nil means otel.GetTracerProvider(),
	// resolved when the transport or handler is built (the global delegates
	// to a provider set later).
	TracerProvider trace.TracerProvider

	// Propagators injects the trace context into client requests and
	// extracts it from server requests. Nil means
	// otel.GetTextMapPropagator(), whose default propagates nothing: set
	// propagation.TraceContext{} here, or globally, to send traceparent.
	Propagators propagation.TextMapPropagator

	// MeterProvider records the metrics listed in the package
	// documentation: http.client.request.duration and
	// http.server.request.duration to the end of the stream, time to first
	// event, events, resumes, and failures by source and reason. Nil means
	// otel.GetMeterProvider(), resolved when the transport or handler is
	// built; as long as it records nothing (no provider was set), a request
	// costs no more than without metrics.
	MeterProvider metric.MeterProvider

	// NoMetrics turns the metrics off, whatever MeterProvider says. False
	// (the default) records them.
	NoMetrics bool

	// SpanNameFormatter, if set, names each span: operation is the name
	// this package would give it (the method, "HTTP" for an unknown one,
	// and on a server " " and the route when the ServeMux matched one), r
	// the request. On a server whose route is only known after the handler
	// ran (a ServeMux inside NewHandler), it is called again then, with r
	// carrying the pattern. Nil keeps operation, as the conventions name
	// spans. A name must stay low-cardinality: never put the URL's path or
	// query in it.
	SpanNameFormatter func(operation string, r *http.Request) string

	// Filter, if set, is asked about each request before anything else: when
	// it returns false, the request is sent (or served) without a span,
	// metrics or injected trace context, as otelhttp's WithFilter does;
	// use it to leave health checks out. Nil traces every request.
	Filter func(r *http.Request) bool

	// PublicEndpoint makes NewHandler start every server span as the root
	// of a new trace, with the incoming trace context (when there is a
	// valid one) as a link instead of its parent: an endpoint open to the
	// internet should not let callers choose its trace ID or sampling.
	// False (the default) makes the incoming context the parent.
	// NewTransport ignores it.
	PublicEndpoint bool

	// PublicEndpointFn, if set, decides PublicEndpoint per request: true
	// for a request from outside (one without an internal network's
	// header, say). It is consulted only when PublicEndpoint is false.
	// NewTransport ignores it.
	PublicEndpointFn func(r *http.Request) bool
}

// ScopeName is the instrumentation scope of the tracer and meter.
const ScopeName = "github.com/streamguard/streamguard/tracing"

// Attribute keys this package sets besides the HTTP semantic conventions.
const (
	// AttrErrorSource is where a failure happened: request, platform, model,
	// network or client (a streamguard.Source).
	AttrErrorSource = "streamguard.error.source"
	// AttrErrorReason is what happened: unreachable, truncated, canceled...
	// (a streamguard.Reason).
	AttrErrorReason = "streamguard.error.reason"
	// AttrErrorCode is the machine code from the error body or event
	// (Baseten's error_code, Anthropic's error type), when there is one.
	AttrErrorCode = "streamguard.error.code"
	// AttrErrorRetryable says whether the same request may succeed if sent
	// again.
	AttrErrorRetryable = "streamguard.error.retryable"
	// AttrRequestID is the request ID from the response headers
	// (X-Baseten-Request-Id, X-Request-Id or Request-Id), when there is one.
	AttrRequestID = "streamguard.request_id"

	// AttrStreamVerdict is how the response body ended: "complete" (read to
	// its end), "closed" (the reader closed it first, which is not a
	// failure), or the failure's reason ("truncated", "model_error",
	// "canceled", ...). A response with an error status carries the
	// status's reason.
	AttrStreamVerdict = "streamguard.stream.verdict"
	// AttrStreamEvents is how many complete events the stream guard
	// delivered; set only when the body is a guarded one.
	AttrStreamEvents = "streamguard.stream.events"
	// AttrStreamBytes is how many body bytes were delivered to the reader
	// (client) or accepted by the connection (server).
	AttrStreamBytes = "streamguard.stream.bytes"
	// AttrStreamDialect is the stream's dialect as the guard recognised it:
	// "openai", "responses" or "anthropic".
	AttrStreamDialect = "streamguard.stream.dialect"
	// AttrStreamTerminal says whether the guard saw the dialect's terminal
	// event.
	AttrStreamTerminal = "streamguard.stream.terminal"
	// AttrTimeToFirstByte is the time in seconds from the start of the span
	// to the first body byte read (client) or written (server).
	AttrTimeToFirstByte = "streamguard.stream.time_to_first_byte"
	// AttrTimeToFirstEvent is the time in seconds from the start of the span
	// to the first complete event the guard delivered.
	AttrTimeToFirstEvent = "streamguard.stream.time_to_first_event"
	// AttrStreamResumes is how many resumes the guard tried on the stream;
	// set only when it tried any.
	AttrStreamResumes = "streamguard.stream.resumes"

	// AttrResumeProtocol is a resume's protocol: "sse-id",
	// "resumable-stream", "responses", or a user's resumer's name.
	AttrResumeProtocol = "streamguard.resume.protocol"
	// AttrResumeCause is the reason of the failure a resume repaired:
	// "truncated", "stalled".
	AttrResumeCause = "streamguard.resume.cause"
	// AttrResumeSucceeded says whether the stream went on after the resume.
	AttrResumeSucceeded = "streamguard.resume.succeeded"
	// AttrResumeError is why a resume failed, sanitized and scrubbed of
	// credentials; on the resume's span event only, never on a metric.
	AttrResumeError = "streamguard.resume.error"
)

// EventResume is the name of the span event a client span gets for each
// resume the stream guard tried, at the time the resume was sent, when the
// body ends. Its attributes: http.request.resend_count (1 for the first
// resume of the attempt, 2 for the second...), AttrResumeProtocol,
// AttrResumeCause, AttrResumeSucceeded, http.response.status_code of the
// resume's response when one came, and AttrResumeError when it failed.
const EventResume = "streamguard.resume"

// The stream verdicts other than a failure's reason.
const (
	VerdictComplete = "complete" // the body was read to its end without a failure
	VerdictClosed   = "closed"   // the reader closed the body before its end: not a failure
)

// settings is a Config with its defaults resolved.
type settings struct {
	tracer   trace.Tracer
	prop     propagation.TextMapPropagator
	inst     *instruments // nil: no metrics
	nameFmt  func(string, *http.Request) string
	filter   func(*http.Request) bool
	public   bool
	publicFn func(*http.Request) bool
}

func newSettings(cfg Config, client bool) settings {
	tp := cfg.TracerProvider
	if tp == nil {
		tp = otel.GetTracerProvider()
	}
	prop := cfg.Propagators
	if prop == nil {
		prop = otel.GetTextMapPropagator()
	}
	s := settings{
		tracer:   tp.Tracer(ScopeName, trace.WithSchemaURL(semconv.SchemaURL)),
		prop:     prop,
		nameFmt:  cfg.SpanNameFormatter,
		filter:   cfg.Filter,
		public:   cfg.PublicEndpoint,
		publicFn: cfg.PublicEndpointFn,
	}
	if !cfg.NoMetrics {
		mp := cfg.MeterProvider
		if mp == nil {
			mp = otel.GetMeterProvider()
		}
		s.inst = newInstruments(mp, client)
	}
	return s
}

// skip reports whether the Filter leaves r untraced.
func (s *settings) skip(r *http.Request) bool { return s.filter != nil && !s.filter(r) }

// name returns the span's name: operation, or what the SpanNameFormatter
// makes of it.
func (s *settings) name(operation string, r *http.Request) string {
	if s.nameFmt == nil {
		return operation
	}
	return s.nameFmt(operation, r)
}

// isPublic reports whether r's incoming trace context is to be a link, not
// the parent.
func (s *settings) isPublic(r *http.Request) bool {
	return s.public || (s.publicFn != nil && s.publicFn(r))
}
