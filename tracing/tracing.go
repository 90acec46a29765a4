package tracing

import (
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

// Config configures the spans and metrics of NewTransport and NewHandler. The
// zero value is ready to use: spans go to the otel global TracerProvider and
// trace context travels with the otel global propagator, and no metrics are
// recorded.
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

	// MeterProvider, if set, records the metrics listed in the package
	// documentation: duration to the end of the stream, time to first event,
	// and failures by source and reason. Nil means no metrics (unlike the
	// other fields, not the global: metrics are opt-in).
	MeterProvider metric.MeterProvider
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
)

// The stream verdicts other than a failure's reason.
const (
	VerdictComplete = "complete" // the body was read to its end without a failure
	VerdictClosed   = "closed"   // the reader closed the body before its end: not a failure
)

// settings is a Config with its defaults resolved.
type settings struct {
	tracer trace.Tracer
	prop   propagation.TextMapPropagator
	inst   *instruments // nil: no metrics
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
		tracer: tp.Tracer(ScopeName, trace.WithSchemaURL(semconv.SchemaURL)),
		prop:   prop,
	}
	if cfg.MeterProvider != nil {
		s.inst = newInstruments(cfg.MeterProvider, client)
	}
	return s
}
