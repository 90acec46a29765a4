package tracing

import (
	"context"
	"errors"
	"sync"

	"github.com/streamguard/streamguard/internal/streamstat"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	semconvgenai "go.opentelemetry.io/otel/semconv/v1.41.0"
	"go.opentelemetry.io/otel/semconv/v1.41.0/genaiconv"
)

// The GenAI metrics of a guarded model call, the conventions' own
// instruments (semconv v1.41.0, package genaiconv; see genai.go for why that
// schema), with their names and units:
const (
	// MetricGenAIDuration is gen_ai.client.operation.duration: seconds from
	// the start of the attempt to the end of its stream, with error.type on
	// a failure.
	MetricGenAIDuration = "gen_ai.client.operation.duration"
	// MetricGenAITokenUsage is gen_ai.client.token.usage: the input and
	// the output tokens the stream reported, by gen_ai.token.type.
	MetricGenAITokenUsage = "gen_ai.client.token.usage"
	// MetricGenAITimeToFirstChunk is
	// gen_ai.client.operation.time_to_first_chunk: seconds to the stream's
	// first event.
	MetricGenAITimeToFirstChunk = "gen_ai.client.operation.time_to_first_chunk"
	// MetricGenAITimePerOutputChunk is
	// gen_ai.client.operation.time_per_output_chunk. The conventions record
	// it for each chunk after the first; the guard reads no clock per
	// event, so it is recorded once per stream that reached its terminal
	// event, with the mean: (terminal - first event) / (events - 1).
	MetricGenAITimePerOutputChunk = "gen_ai.client.operation.time_per_output_chunk"
)

// The advisory bucket boundaries of the GenAI metrics document of the
// semantic conventions; genaiconv v1.41.0 carries none. The two chunk
// metrics use those of their server-side counterparts
// (gen_ai.server.time_to_first_token, gen_ai.server.time_per_output_token).
var (
	genaiDurationBuckets = []float64{0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92}
	genaiTokenBuckets    = []float64{1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864}
	genaiFirstBuckets    = []float64{0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0}
	genaiPerChunkBuckets = []float64{0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5}
)

// genaiInstruments are the GenAI metrics of a client transport.
type genaiInstruments struct {
	duration genaiconv.ClientOperationDuration
	tokens   genaiconv.ClientTokenUsage
	first    genaiconv.ClientOperationTimeToFirstChunk
	perChunk genaiconv.ClientOperationTimePerOutputChunk
	models   boundedSet // the model names recorded so far
}

// maxModels is how many distinct model names (request and response models
// together) a client transport records in its GenAI metrics; any other is
// recorded as "_OTHER". The response model is the server's to name and the
// request model, behind a relay, its users': either could otherwise grow a
// series for every call.
const maxModels = 100

// otherValue stands for a value past a bound, as in http.request.method.
const otherValue = "_OTHER"

// boundedSet admits the first max distinct values it is asked about.
type boundedSet struct {
	mu   sync.Mutex
	seen map[string]struct{}
}

// value returns v when it is admitted, and otherValue when max others were
// admitted before it.
func (b *boundedSet) value(v string, max int) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.seen[v]; ok {
		return v
	}
	if len(b.seen) >= max {
		return otherValue
	}
	if b.seen == nil {
		b.seen = make(map[string]struct{})
	}
	b.seen[v] = struct{}{}
	return v
}

// newGenAIInstruments makes them with a meter of the GenAI schema, v1.41.0;
// nil when the MeterProvider fails.
func newGenAIInstruments(mp metric.MeterProvider) *genaiInstruments {
	m := mp.Meter(ScopeName, metric.WithSchemaURL(semconvgenai.SchemaURL))
	var g genaiInstruments
	var errs [4]error
	g.duration, errs[0] = genaiconv.NewClientOperationDuration(m, metric.WithExplicitBucketBoundaries(genaiDurationBuckets...))
	g.tokens, errs[1] = genaiconv.NewClientTokenUsage(m, metric.WithExplicitBucketBoundaries(genaiTokenBuckets...))
	g.first, errs[2] = genaiconv.NewClientOperationTimeToFirstChunk(m, metric.WithExplicitBucketBoundaries(genaiFirstBuckets...))
	g.perChunk, errs[3] = genaiconv.NewClientOperationTimePerOutputChunk(m, metric.WithExplicitBucketBoundaries(genaiPerChunkBuckets...))
	if err := errors.Join(errs[:]...); err != nil {
		otel.Handle(err)
		return nil
	}
	return &g
}

// genaiOutcome is what the GenAI metrics of one call need.
type genaiOutcome struct {
	g         *streamstat.GenAI
	model     string               // gen_ai.request.model, or ""
	server    []attribute.KeyValue // server.address and server.port
	errorType string
	seconds   float64 // to the end of the stream
	first     float64 // to the first event; < 0 when none
}

// record records one guarded model call.
func (in *genaiInstruments) record(ctx context.Context, o genaiOutcome) {
	op, prov, ok := genaiKind(o.g.Dialect)
	if in == nil || !ok {
		return
	}
	attrs := make([]attribute.KeyValue, 0, len(o.server)+3)
	attrs = append(attrs, o.server...)
	if o.model != "" {
		attrs = append(attrs, in.duration.AttrRequestModel(in.models.value(o.model, maxModels)))
	}
	if o.g.ResponseModel != "" {
		attrs = append(attrs, in.duration.AttrResponseModel(in.models.value(o.g.ResponseModel, maxModels)))
	}
	common := attrs[:len(attrs):len(attrs)]
	if o.errorType != "" {
		attrs = append(attrs, in.duration.AttrErrorType(genaiconv.ErrorTypeAttr(o.errorType)))
	}
	in.duration.Record(ctx, o.seconds, op, prov, attrs...)
	if o.g.InputTokens >= 0 {
		in.tokens.Record(ctx, o.g.InputTokens, op, prov, genaiconv.TokenTypeInput, common...)
	}
	if o.g.OutputTokens >= 0 {
		in.tokens.Record(ctx, o.g.OutputTokens, op, prov, genaiconv.TokenTypeOutput, common...)
	}
	if o.first >= 0 {
		in.first.Record(ctx, o.first, op, prov, common...)
	}
	if o.g.Chunks > 1 && !o.g.FirstChunk.IsZero() && o.g.LastChunk.After(o.g.FirstChunk) {
		mean := o.g.LastChunk.Sub(o.g.FirstChunk).Seconds() / float64(o.g.Chunks-1)
		in.perChunk.Record(ctx, mean, op, prov, common...)
	}
}
