package tracing_test

import (
	"context"
	"io"
	"net/http"
	"slices"
	"sync"
	"testing"

	"github.com/streamguard/streamguard/gatewaytest"
	"github.com/streamguard/streamguard/tracing"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/embedded"
	"go.opentelemetry.io/otel/metric/noop"
)

// meterRecorder is a MeterProvider that records what the instruments of
// this package receive. (The module does not require the metric SDK, so its
// ManualReader is not available here; the API's own config types read the
// options back, bucket boundaries included.)
type meterRecorder struct {
	noop.Meter

	mu       sync.Mutex
	scope    string
	bounds   map[string][]float64
	values   map[string][]float64
	failures map[string]map[string]int64 // name: "source/reason": count
}

func newMeterRecorder() *meterRecorder {
	return &meterRecorder{bounds: map[string][]float64{}, values: map[string][]float64{}, failures: map[string]map[string]int64{}}
}

// provider returns a MeterProvider whose meter is m.
func (m *meterRecorder) provider() metric.MeterProvider { return recorderProvider{m: m} }

type recorderProvider struct {
	embedded.MeterProvider
	m *meterRecorder
}

func (p recorderProvider) Meter(name string, _ ...metric.MeterOption) metric.Meter {
	p.m.mu.Lock()
	p.m.scope = name
	p.m.mu.Unlock()
	return p.m
}

func (m *meterRecorder) Float64Histogram(name string, opts ...metric.Float64HistogramOption) (metric.Float64Histogram, error) {
	cfg := metric.NewFloat64HistogramConfig(opts...)
	m.mu.Lock()
	m.bounds[name] = cfg.ExplicitBucketBoundaries()
	m.mu.Unlock()
	return histRecorder{m: m, name: name}, nil
}

func (m *meterRecorder) Int64Counter(name string, _ ...metric.Int64CounterOption) (metric.Int64Counter, error) {
	return counterRecorder{m: m, name: name}, nil
}

type histRecorder struct {
	noop.Float64Histogram
	m    *meterRecorder
	name string
}

func (h histRecorder) Record(_ context.Context, v float64, _ ...metric.RecordOption) {
	h.m.mu.Lock()
	h.m.values[h.name] = append(h.m.values[h.name], v)
	h.m.mu.Unlock()
}

type counterRecorder struct {
	noop.Int64Counter
	m    *meterRecorder
	name string
}

func (c counterRecorder) Add(_ context.Context, v int64, opts ...metric.AddOption) {
	set := metric.NewAddConfig(opts).Attributes()
	src, _ := set.Value(attribute.Key(tracing.AttrErrorSource))
	rsn, _ := set.Value(attribute.Key(tracing.AttrErrorReason))
	c.m.mu.Lock()
	if c.m.failures[c.name] == nil {
		c.m.failures[c.name] = map[string]int64{}
	}
	c.m.failures[c.name][src.AsString()+"/"+rsn.AsString()] += v
	c.m.mu.Unlock()
}

func (m *meterRecorder) count(name string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.values[name])
}

func (m *meterRecorder) failuresOf(name string) map[string]int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.failures[name]
}

// TestClientMetrics: the duration to the end of the stream (buckets reaching
// the 1200 s budget), the time to first event, and failures by source and
// reason.
func TestClientMetrics(t *testing.T) {
	f := newFixture(t)
	mp := newMeterRecorder()
	cfg := f.cfg
	cfg.MeterProvider = mp.provider()

	srv := gatewaytest.NewServer(gatewaytest.ChatStream(3))
	defer srv.Close()
	srv.Script(gatewaytest.Pass(), gatewaytest.Unreachable(), gatewaytest.Cut(1))
	client := &http.Client{Transport: tracing.NewTransport(guarded(srv.Client().Transport, nil), cfg)}
	for range 3 {
		resp, err := client.Get(srv.URL + "/v1/chat/completions")
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}

	if mp.scope != tracing.ScopeName {
		t.Errorf("meter scope %q", mp.scope)
	}
	if n := mp.count(tracing.MetricClientDuration); n != 3 {
		t.Errorf("duration count %d, want 3", n)
	}
	for _, name := range []string{tracing.MetricClientDuration, tracing.MetricClientTimeToFirstEvent} {
		if !slices.Contains(mp.bounds[name], 1200) {
			t.Errorf("%s buckets %v do not reach the 1200 s budget", name, mp.bounds[name])
		}
	}
	if n := mp.count(tracing.MetricClientTimeToFirstEvent); n != 2 {
		t.Errorf("time to first event count %d, want 2 (the 502 has no events)", n)
	}
	got := mp.failuresOf(tracing.MetricClientFailures)
	if len(got) != 2 || got["platform/unreachable"] != 1 || got["network/truncated"] != 1 {
		t.Errorf("failures %v", got)
	}
}

// TestServerMetrics: the server's duration, time to first byte and failures.
func TestServerMetrics(t *testing.T) {
	f := newFixture(t)
	mp := newMeterRecorder()
	cfg := f.cfg
	cfg.MeterProvider = mp.provider()
	mux := http.NewServeMux()
	mux.HandleFunc("/ok", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "data: x\n\n") })
	mux.HandleFunc("/busy", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusServiceUnavailable) })
	srv := quietServer(t, tracing.NewHandler(mux, cfg), false)
	for _, path := range []string{"/ok", "/busy"} {
		resp, err := srv.Client().Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		f.waitSpan(t)
	}
	if n := mp.count(tracing.MetricServerDuration); n != 2 {
		t.Errorf("duration count %d", n)
	}
	if n := mp.count(tracing.MetricServerTimeToFirstByte); n != 1 {
		t.Errorf("time to first byte count %d, want 1", n)
	}
	if got := mp.failuresOf(tracing.MetricServerFailures); len(got) != 1 || got["platform/unavailable"] != 1 {
		t.Errorf("failures %v", got)
	}
}
