package tracing

import (
	"context"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
)

// The names of the metrics recorded when Config.MeterProvider is set.
const (
	// MetricClientDuration is a histogram of the time in seconds from the
	// start of a client attempt to the end of its response body: EOF,
	// failure or Close. For a stream that is the whole generation, not the
	// time to the headers that semconv's http.client.request.duration
	// measures.
	MetricClientDuration = "streamguard.client.request.duration"
	// MetricClientTimeToFirstEvent is a histogram of the time in seconds to
	// the first complete event of a guarded stream.
	MetricClientTimeToFirstEvent = "streamguard.client.time_to_first_event"
	// MetricClientFailures counts failed client attempts by
	// streamguard.error.source and streamguard.error.reason, the caller's
	// own cancellations (source client, reason canceled) included.
	MetricClientFailures = "streamguard.client.failures"

	// MetricServerDuration is a histogram of the time in seconds a server
	// request took, to the end of the handler (the end of the stream).
	MetricServerDuration = "streamguard.server.request.duration"
	// MetricServerTimeToFirstByte is a histogram of the time in seconds to
	// the first body byte a handler wrote.
	MetricServerTimeToFirstByte = "streamguard.server.time_to_first_byte"
	// MetricServerFailures counts failed server requests by source and
	// reason, clients that went away included.
	MetricServerFailures = "streamguard.server.failures"
)

// durationBuckets reach past the platform's budgets: semconv's default
// buckets stop at 10 s, where an LLM stream has barely started; a sync or
// streaming prediction may run 1200 s (streamguard.SyncBudget) and an async
// one 3600 s.
var durationBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1200, 3600}

// firstEventBuckets reach the platform's 600 s wake from scale-to-zero and
// the 1200 s budget within which the first token must come.
var firstEventBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1200}

type instruments struct {
	duration metric.Float64Histogram
	first    metric.Float64Histogram
	failures metric.Int64Counter
}

func newInstruments(mp metric.MeterProvider, client bool) *instruments {
	m := mp.Meter(ScopeName, metric.WithSchemaURL(semconv.SchemaURL))
	names := [3]string{MetricServerDuration, MetricServerTimeToFirstByte, MetricServerFailures}
	descs := [3]string{
		"Duration of HTTP server requests to the end of the response stream.",
		"Time to the first response body byte written.",
		"Failed HTTP server requests by streamguard error source and reason.",
	}
	if client {
		names = [3]string{MetricClientDuration, MetricClientTimeToFirstEvent, MetricClientFailures}
		descs = [3]string{
			"Duration of HTTP client requests to the end of the response stream.",
			"Time to the first complete event of a guarded response stream.",
			"Failed HTTP client requests by streamguard error source and reason.",
		}
	}
	var in instruments
	var err error
	if in.duration, err = m.Float64Histogram(names[0], metric.WithUnit("s"), metric.WithDescription(descs[0]),
		metric.WithExplicitBucketBoundaries(durationBuckets...)); err != nil {
		otel.Handle(err)
	}
	if in.first, err = m.Float64Histogram(names[1], metric.WithUnit("s"), metric.WithDescription(descs[1]),
		metric.WithExplicitBucketBoundaries(firstEventBuckets...)); err != nil {
		otel.Handle(err)
	}
	if in.failures, err = m.Int64Counter(names[2], metric.WithUnit("{failure}"), metric.WithDescription(descs[2])); err != nil {
		otel.Handle(err)
	}
	return &in
}

// outcome is what one request came to, for the metrics.
type outcome struct {
	base      []attribute.KeyValue // method, server address or route
	status    int                  // 0: no response
	errorType string               // "" when not an error
	source    string               // "" when nothing failed
	reason    string
	seconds   float64 // to the end of the body
	first     float64 // to the first event or byte; < 0 when none
}

func (in *instruments) record(ctx context.Context, o outcome) {
	if in == nil {
		return
	}
	// The context of a canceled request is done; the SDK does not care, but
	// an exemplar filter may, so record in a context without its deadline.
	ctx = context.WithoutCancel(ctx)
	attrs := make([]attribute.KeyValue, 0, len(o.base)+2)
	attrs = append(attrs, o.base...)
	if o.status > 0 {
		attrs = append(attrs, semconv.HTTPResponseStatusCode(o.status))
	}
	if o.errorType != "" {
		attrs = append(attrs, semconv.ErrorTypeKey.String(o.errorType))
	}
	if in.duration != nil {
		in.duration.Record(ctx, o.seconds, metric.WithAttributes(attrs...))
	}
	if in.first != nil && o.first >= 0 {
		in.first.Record(ctx, o.first, metric.WithAttributes(o.base...))
	}
	if in.failures != nil && o.source != "" {
		fa := append(o.base[:len(o.base):len(o.base)],
			attribute.String(AttrErrorSource, o.source), attribute.String(AttrErrorReason, o.reason))
		in.failures.Add(ctx, 1, metric.WithAttributes(fa...))
	}
}
