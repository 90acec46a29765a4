package tracing_test

import (
	"context"
	"io"
	"net/http"
	"slices"
	"testing"

	"github.com/streamguard/streamguard/gatewaytest"
	"github.com/streamguard/streamguard/tracing"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

// meterRecorder reads what the instruments of this package recorded through
// the OpenTelemetry metric SDK's ManualReader.
type meterRecorder struct {
	reader *sdkmetric.ManualReader
	mp     *sdkmetric.MeterProvider
	scope  string
	bounds map[string][]float64
	counts map[string]uint64
	// failures: name: "source/reason": count
	failures map[string]map[string]int64
}

func newMeterRecorder(t *testing.T) *meterRecorder {
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t.Cleanup(func() { mp.Shutdown(context.Background()) })
	return &meterRecorder{reader: reader, mp: mp}
}

func (m *meterRecorder) provider() metric.MeterProvider { return m.mp }

// collect reads every instrument once.
func (m *meterRecorder) collect(t *testing.T) {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := m.reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	m.bounds, m.counts, m.failures = map[string][]float64{}, map[string]uint64{}, map[string]map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		m.scope = sm.Scope.Name
		for _, md := range sm.Metrics {
			switch data := md.Data.(type) {
			case metricdata.Histogram[float64]:
				for _, dp := range data.DataPoints {
					m.counts[md.Name] += dp.Count
					m.bounds[md.Name] = dp.Bounds
				}
			case metricdata.Sum[int64]:
				f := map[string]int64{}
				for _, dp := range data.DataPoints {
					src, _ := dp.Attributes.Value(attribute.Key(tracing.AttrErrorSource))
					reason, _ := dp.Attributes.Value(attribute.Key(tracing.AttrErrorReason))
					f[src.AsString()+"/"+reason.AsString()] += dp.Value
				}
				m.failures[md.Name] = f
			}
		}
	}
}

func (m *meterRecorder) count(name string) int { return int(m.counts[name]) }

func (m *meterRecorder) failuresOf(name string) map[string]int64 { return m.failures[name] }

// TestClientMetrics: the duration to the end of the stream (buckets reaching
// the 1200 s budget), the time to first event, and failures by source and
// reason.
func TestClientMetrics(t *testing.T) {
	f := newFixture(t)
	mp := newMeterRecorder(t)
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

	mp.collect(t)
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
	mp := newMeterRecorder(t)
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
	mp.collect(t)
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
