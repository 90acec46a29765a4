package tracing

import (
	"context"

	"github.com/streamguard/streamguard/internal/streamstat"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/semconv/v1.43.0/httpconv"
)

// The names of the metrics recorded unless Config.NoMetrics is set. The two
// durations are the HTTP semantic conventions' own instruments (semconv
// v1.43.0, package httpconv), with their unit (s), advisory buckets and
// attributes; the others are this package's, for what the conventions do
// not measure.
const (
	// MetricClientDuration is semconv's http.client.request.duration: the
	// time in seconds from the start of a client attempt to the end of its
	// response body (EOF, failure or Close), the span's own duration. For a
	// stream that is the whole generation, not the time to the headers.
	// The conventions' advisory buckets stop at 10 s, where a long stream
	// has barely started: widen them with a View of the SDK
	// (sdkmetric.NewView with AggregationExplicitBucketHistogram) where
	// streams last minutes. Attributes: http.request.method,
	// server.address, server.port, http.response.status_code,
	// network.protocol.version and, on a failure, error.type (the reason).
	MetricClientDuration = "http.client.request.duration"
	// MetricClientTimeToFirstEvent is a histogram of the time in seconds to
	// the first complete event of a guarded stream.
	MetricClientTimeToFirstEvent = "streamguard.client.time_to_first_event"
	// MetricClientEvents counts the complete events guarded streams
	// delivered.
	MetricClientEvents = "streamguard.client.events"
	// MetricClientResumes counts the resumes the stream guard tried, by
	// AttrResumeProtocol, AttrResumeCause and AttrResumeSucceeded.
	MetricClientResumes = "streamguard.client.resumes"
	// MetricClientFailures counts failed client attempts by
	// streamguard.error.source and streamguard.error.reason, the caller's
	// own cancellations (source client, reason canceled) included.
	MetricClientFailures = "streamguard.client.failures"

	// MetricServerDuration is semconv's http.server.request.duration: the
	// time in seconds a server request took, to the end of the handler
	// (the end of the stream), with the conventions' advisory buckets.
	// Attributes: http.request.method, url.scheme, http.route when known,
	// http.response.status_code, network.protocol.version and, on a
	// failure, error.type.
	MetricServerDuration = "http.server.request.duration"
	// MetricServerTimeToFirstByte is a histogram of the time in seconds to
	// the first body byte a handler wrote.
	MetricServerTimeToFirstByte = "streamguard.server.time_to_first_byte"
	// MetricServerFailures counts failed server requests by source and
	// reason, clients that went away included.
	MetricServerFailures = "streamguard.server.failures"
)

// firstEventBuckets reach the platform's 600 s wake from scale-to-zero and
// the 1200 s budget within which the first token must come.
var firstEventBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1200}

// instruments are the metrics of a transport or a handler; the client's
// events and resumes are nil on a server.
type instruments struct {
	duration metric.Float64Histogram
	first    metric.Float64Histogram
	failures metric.Int64Counter
	events   metric.Int64Counter
	resumes  metric.Int64Counter
	genai    *genaiInstruments // the client's GenAI metrics (genaimetrics.go); nil on a server
}

func newInstruments(mp metric.MeterProvider, client bool) *instruments {
	m := mp.Meter(ScopeName, metric.WithSchemaURL(semconv.SchemaURL))
	var in instruments
	var errs [5]error
	if client {
		d, err := httpconv.NewClientRequestDuration(m)
		in.duration, errs[0] = d.Inst(), err
		in.first, errs[1] = m.Float64Histogram(MetricClientTimeToFirstEvent, metric.WithUnit("s"),
			metric.WithDescription("Time to the first complete event of a guarded response stream."),
			metric.WithExplicitBucketBoundaries(firstEventBuckets...))
		in.failures, errs[2] = m.Int64Counter(MetricClientFailures, metric.WithUnit("{failure}"),
			metric.WithDescription("Failed HTTP client requests by streamguard error source and reason."))
		in.events, errs[3] = m.Int64Counter(MetricClientEvents, metric.WithUnit("{event}"),
			metric.WithDescription("Complete events delivered by guarded response streams."))
		in.resumes, errs[4] = m.Int64Counter(MetricClientResumes, metric.WithUnit("{resume}"),
			metric.WithDescription("Resumes of broken response streams tried by the stream guard."))
	} else {
		d, err := httpconv.NewServerRequestDuration(m)
		in.duration, errs[0] = d.Inst(), err
		in.first, errs[1] = m.Float64Histogram(MetricServerTimeToFirstByte, metric.WithUnit("s"),
			metric.WithDescription("Time to the first response body byte written."),
			metric.WithExplicitBucketBoundaries(firstEventBuckets...))
		in.failures, errs[2] = m.Int64Counter(MetricServerFailures, metric.WithUnit("{failure}"),
			metric.WithDescription("Failed HTTP server requests by streamguard error source and reason."))
	}
	for _, err := range errs {
		if err != nil {
			otel.Handle(err)
		}
	}
	if in.first == nil || in.failures == nil || (client && (in.events == nil || in.resumes == nil)) {
		// A broken MeterProvider: record nothing rather than panic.
		return nil
	}
	if client {
		in.genai = newGenAIInstruments(mp)
	}
	return &in
}

// enabled reports whether any instrument records anything: a MeterProvider
// that records nothing (the global one before a provider is set, a no-op
// one) costs a request no wrapped body.
func (in *instruments) enabled(ctx context.Context) bool {
	if in == nil {
		return false
	}
	return in.duration.Enabled(ctx) || in.first.Enabled(ctx) || in.failures.Enabled(ctx) ||
		(in.events != nil && in.events.Enabled(ctx)) || (in.resumes != nil && in.resumes.Enabled(ctx)) ||
		(in.genai != nil && in.genai.duration.Enabled(ctx))
}

// outcome is what one request came to, for the metrics.
type outcome struct {
	base      []attribute.KeyValue // method, server address and port, or scheme and route
	status    int                  // 0: no response
	proto     string               // network.protocol.version, or ""
	errorType string               // "" when not an error
	source    string               // "" when nothing failed
	reason    string
	seconds   float64 // to the end of the body
	first     float64 // to the first event or byte; < 0 when none
	stats     streamstat.Stats
	guarded   bool          // stats are a stream guard's
	genai     *genaiOutcome // a model call the guard recognised; nil otherwise
}

func (in *instruments) record(ctx context.Context, o outcome) {
	if in == nil {
		return
	}
	// The context of a canceled request is done; the SDK does not care, but
	// an exemplar filter may, so record in a context without its deadline.
	ctx = context.WithoutCancel(ctx)
	attrs := make([]attribute.KeyValue, 0, len(o.base)+3)
	attrs = append(attrs, o.base...)
	if o.status > 0 {
		attrs = append(attrs, semconv.HTTPResponseStatusCode(o.status))
	}
	if o.proto != "" {
		attrs = append(attrs, semconv.NetworkProtocolVersion(o.proto))
	}
	if o.errorType != "" {
		attrs = append(attrs, semconv.ErrorTypeKey.String(o.errorType))
	}
	in.duration.Record(ctx, o.seconds, metric.WithAttributes(attrs...))
	base := metric.WithAttributes(o.base...)
	if o.first >= 0 {
		in.first.Record(ctx, o.first, base)
	}
	if o.source != "" {
		fa := append(o.base[:len(o.base):len(o.base)],
			attribute.String(AttrErrorSource, o.source), attribute.String(AttrErrorReason, o.reason))
		in.failures.Add(ctx, 1, metric.WithAttributes(fa...))
	}
	if o.guarded && in.events != nil {
		in.recordStream(ctx, o.base, &o.stats)
	}
	if o.genai != nil {
		g := *o.genai
		g.errorType, g.seconds, g.first = o.errorType, o.seconds, o.first
		in.genai.record(ctx, g)
	}
}

// recordStream records a guarded stream's events and resumes.
func (in *instruments) recordStream(ctx context.Context, base []attribute.KeyValue, st *streamstat.Stats) {
	if st.Events > 0 {
		in.events.Add(ctx, st.Events, metric.WithAttributes(base...))
	}
	for _, r := range st.Resumes {
		ra := append(base[:len(base):len(base)], resumeAttrs(r)...)
		in.resumes.Add(ctx, 1, metric.WithAttributes(ra...))
	}
}

// resumeAttrs are the low-cardinality attributes of one resume: its
// protocol, the cause it repaired, and whether the stream went on.
func resumeAttrs(r streamstat.Resume) []attribute.KeyValue {
	return []attribute.KeyValue{
		attribute.String(AttrResumeProtocol, r.Protocol),
		attribute.String(AttrResumeCause, r.Cause),
		attribute.Bool(AttrResumeSucceeded, r.Err == ""),
	}
}
