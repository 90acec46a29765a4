package tracing_test

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/streamguard/streamguard/gatewaytest"
	"github.com/streamguard/streamguard/internal/streamstat"
	"github.com/streamguard/streamguard/tracing"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/semconv/v1.43.0/httpconv"
)

// meterRecorder reads what the instruments of this package recorded through
// the OpenTelemetry metric SDK's ManualReader.
type meterRecorder struct {
	reader *sdkmetric.ManualReader
	mp     *sdkmetric.MeterProvider
	scope  string
	units  map[string]string
	bounds map[string][]float64
	// points: name: one entry per data point, its attributes and its count
	// (histogram) or value (sum).
	points map[string][]point
}

type point struct {
	attrs attribute.Set
	n     int64
}

func newMeterRecorder(t *testing.T) *meterRecorder {
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t.Cleanup(func() { mp.Shutdown(context.Background()) })
	return &meterRecorder{reader: reader, mp: mp}
}

func (m *meterRecorder) provider() metric.MeterProvider { return m.mp }

// meteredFixture is a fixture whose Config also records metrics into a
// meterRecorder.
func meteredFixture(t *testing.T) (*fixture, *meterRecorder, tracing.Config) {
	f, mp := newFixture(t), newMeterRecorder(t)
	cfg := f.cfg
	cfg.MeterProvider = mp.provider()
	return f, mp, cfg
}

// getAll sends a GET through client and reads and closes the body.
func getAll(t *testing.T, client *http.Client, url string) {
	t.Helper()
	resp, err := client.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
}

// withResumes wraps every response body of base in a fakeGuard that
// reports resumes.
func withResumes(base http.RoundTripper, resumes ...streamstat.Resume) http.RoundTripper {
	return rtFunc(func(r *http.Request) (*http.Response, error) {
		resp, err := base.RoundTrip(r)
		if err == nil {
			resp.Body = &fakeGuard{rc: resp.Body, stats: streamstat.Stats{Resumes: resumes}}
		}
		return resp, err
	})
}

// collect reads every instrument once.
func (m *meterRecorder) collect(t *testing.T) {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := m.reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	m.units, m.bounds, m.points = map[string]string{}, map[string][]float64{}, map[string][]point{}
	for _, sm := range rm.ScopeMetrics {
		m.scope = sm.Scope.Name
		for _, md := range sm.Metrics {
			m.units[md.Name] = md.Unit
			switch data := md.Data.(type) {
			case metricdata.Histogram[float64]:
				for _, dp := range data.DataPoints {
					m.points[md.Name] = append(m.points[md.Name], point{dp.Attributes, int64(dp.Count)})
					m.bounds[md.Name] = dp.Bounds
				}
			case metricdata.Sum[int64]:
				for _, dp := range data.DataPoints {
					m.points[md.Name] = append(m.points[md.Name], point{dp.Attributes, dp.Value})
				}
			}
		}
	}
}

// count sums the counts or values of name's data points.
func (m *meterRecorder) count(name string) int {
	n := 0
	for _, p := range m.points[name] {
		n += int(p.n)
	}
	return n
}

// by sums name's data points by the values of keys, joined with "/".
func (m *meterRecorder) by(name string, keys ...attribute.Key) map[string]int64 {
	out := map[string]int64{}
	for _, p := range m.points[name] {
		var k string
		for i, key := range keys {
			v, _ := p.attrs.Value(key)
			if i > 0 {
				k += "/"
			}
			k += v.String()
		}
		out[k] += p.n
	}
	return out
}

func (m *meterRecorder) failuresOf(name string) map[string]int64 {
	return m.by(name, tracing.AttrErrorSource, tracing.AttrErrorReason)
}

// TestClientMetrics: semconv's http.client.request.duration with its
// conventional name, unit, buckets and attributes, error.type the reason;
// the time to first event and the events of guarded streams; failures by
// source and reason.
func TestClientMetrics(t *testing.T) {
	_, mp, cfg := meteredFixture(t)

	srv := gatewaytest.NewServer(gatewaytest.ChatStream(3))
	defer srv.Close()
	srv.Script(gatewaytest.Pass(), gatewaytest.Unreachable(), gatewaytest.Cut(1))
	client := &http.Client{Transport: tracing.NewTransport(guarded(srv.Client().Transport, nil), cfg)}
	for range 3 {
		getAll(t, client, srv.URL+"/v1/chat/completions")
	}

	mp.collect(t)
	if mp.scope != tracing.ScopeName {
		t.Errorf("meter scope %q", mp.scope)
	}
	conv := httpconv.ClientRequestDuration{}
	if tracing.MetricClientDuration != conv.Name() || mp.units[conv.Name()] != conv.Unit() {
		t.Errorf("duration %q in %q, want semconv's %q in %q", tracing.MetricClientDuration, mp.units[conv.Name()], conv.Name(), conv.Unit())
	}
	if n := mp.count(conv.Name()); n != 3 {
		t.Errorf("duration count %d, want 3", n)
	}
	if b := mp.bounds[conv.Name()]; len(b) == 0 || b[len(b)-1] != 10 || !slices.Contains(b, 0.075) {
		t.Errorf("duration buckets %v, want the conventions' advisory ones", b)
	}
	byStatus := mp.by(conv.Name(), semconv.HTTPRequestMethodKey, semconv.HTTPResponseStatusCodeKey, semconv.ErrorTypeKey, semconv.NetworkProtocolVersionKey)
	if len(byStatus) != 3 || byStatus["GET/200//1.1"] != 1 || byStatus["GET/502/unreachable/1.1"] != 1 || byStatus["GET/200/truncated/1.1"] != 1 {
		t.Errorf("duration by method/status/error.type/version: %v", byStatus)
	}
	for _, p := range mp.points[conv.Name()] {
		if host, _ := p.attrs.Value(semconv.ServerAddressKey); host.AsString() != "127.0.0.1" {
			t.Errorf("server.address %q", host.String())
		}
		if port, _ := p.attrs.Value(semconv.ServerPortKey); port.AsInt64() <= 0 {
			t.Errorf("server.port %q", port.String())
		}
		if _, ok := p.attrs.Value(semconv.URLFullKey); ok {
			t.Error("url.full on a metric")
		}
	}
	if b := mp.bounds[tracing.MetricClientTimeToFirstEvent]; !slices.Contains(b, 1200) {
		t.Errorf("time to first event buckets %v do not reach the 1200 s budget", b)
	}
	if n := mp.count(tracing.MetricClientTimeToFirstEvent); n != 2 {
		t.Errorf("time to first event count %d, want 2 (the 502 has no events)", n)
	}
	// ChatStream(3): 3 chunks and [DONE], then 1 complete event of the cut one.
	if n := mp.count(tracing.MetricClientEvents); n != 5 {
		t.Errorf("events %d, want 5", n)
	}
	got := mp.failuresOf(tracing.MetricClientFailures)
	if len(got) != 2 || got["platform/unreachable"] != 1 || got["network/truncated"] != 1 {
		t.Errorf("failures %v", got)
	}
}

// TestServerMetrics: semconv's http.server.request.duration with the route,
// the time to first byte and failures.
func TestServerMetrics(t *testing.T) {
	f, mp, cfg := meteredFixture(t)
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
	conv := httpconv.ServerRequestDuration{}
	if tracing.MetricServerDuration != conv.Name() || mp.units[conv.Name()] != conv.Unit() {
		t.Errorf("duration %q in %q, want semconv's %q", tracing.MetricServerDuration, mp.units[conv.Name()], conv.Name())
	}
	got := mp.by(conv.Name(), semconv.URLSchemeKey, semconv.HTTPRouteKey, semconv.HTTPResponseStatusCodeKey, semconv.ErrorTypeKey)
	if len(got) != 2 || got["http//ok/200/"] != 1 || got["http//busy/503/unavailable"] != 1 {
		t.Errorf("duration by scheme/route/status/error.type: %v", got)
	}
	if n := mp.count(tracing.MetricServerTimeToFirstByte); n != 1 {
		t.Errorf("time to first byte count %d, want 1", n)
	}
	if got := mp.failuresOf(tracing.MetricServerFailures); len(got) != 1 || got["platform/unavailable"] != 1 {
		t.Errorf("failures %v", got)
	}
}

// TestMetricsGlobalAndOff: with no MeterProvider the metrics go to the
// global one; NoMetrics turns them off.
func TestMetricsGlobalAndOff(t *testing.T) {
	mp := newMeterRecorder(t)
	prev := otel.GetMeterProvider()
	otel.SetMeterProvider(mp.provider())
	t.Cleanup(func() { otel.SetMeterProvider(prev) })

	srv := gatewaytest.NewServer(gatewaytest.ChatStream(1))
	defer srv.Close()
	for _, off := range []bool{false, true} {
		f := newFixture(t)
		cfg := f.cfg
		cfg.NoMetrics = off
		getAll(t, &http.Client{Transport: tracing.NewTransport(srv.Client().Transport, cfg)}, srv.URL+"/v1/chat/completions")
	}
	mp.collect(t)
	if n := mp.count(tracing.MetricClientDuration); n != 1 {
		t.Errorf("duration count %d, want 1: the global provider's, none with NoMetrics", n)
	}
}

// TestResumes: each resume record of the guard becomes a span event at its
// time, with semconv's resend count and status code, and a count of the
// resumes metric by protocol, cause and outcome; the span counts them.
func TestResumes(t *testing.T) {
	f, mp, cfg := meteredFixture(t)
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	resumes := []streamstat.Resume{
		{At: at, Protocol: "sse-id", Cause: "truncated", LastEventID: "7", StatusCode: 503, Err: "503 Service Unavailable"},
		{At: at.Add(time.Second), Protocol: "sse-id", Cause: "truncated", LastEventID: "7", StatusCode: 200},
	}
	srv := gatewaytest.NewServer(gatewaytest.ChatStream(2))
	defer srv.Close()
	getAll(t, &http.Client{Transport: tracing.NewTransport(withResumes(srv.Client().Transport, resumes...), cfg)}, srv.URL+"/v1/chat/completions")

	s := f.onlySpan(t)
	want(t, s, map[string]string{tracing.AttrStreamResumes: "2"})
	var events []string
	for _, e := range s.Events() {
		if e.Name != tracing.EventResume {
			continue
		}
		set := attribute.NewSet(e.Attributes...)
		var line string
		for _, k := range []attribute.Key{semconv.HTTPRequestResendCountKey, tracing.AttrResumeProtocol, tracing.AttrResumeCause,
			semconv.HTTPResponseStatusCodeKey, tracing.AttrResumeSucceeded, tracing.AttrResumeError} {
			v, _ := set.Value(k)
			line += v.String() + "|"
		}
		events = append(events, e.Time.Format(time.TimeOnly)+" "+line)
	}
	wantEvents := []string{
		"03:04:05 1|sse-id|truncated|503|false|503 Service Unavailable|",
		"03:04:06 2|sse-id|truncated|200|true||",
	}
	if !slices.Equal(events, wantEvents) {
		t.Errorf("resume events\n%q\nwant\n%q", events, wantEvents)
	}

	mp.collect(t)
	got := mp.by(tracing.MetricClientResumes, tracing.AttrResumeProtocol, tracing.AttrResumeCause, tracing.AttrResumeSucceeded)
	if len(got) != 2 || got["sse-id/truncated/false"] != 1 || got["sse-id/truncated/true"] != 1 {
		t.Errorf("resumes metric %v", got)
	}
}

// TestMetricsServerFromHost: a request whose URL has no host (a transport
// of the caller's that dials r.Host) is recorded with r.Host as
// server.address, never with an empty one.
func TestMetricsServerFromHost(t *testing.T) {
	_, mp, cfg := meteredFixture(t)
	base := rtFunc(func(r *http.Request) (*http.Response, error) {
		return &http.Response{StatusCode: 200, Header: http.Header{}, Body: io.NopCloser(strings.NewReader("ok")), Request: r}, nil
	})
	client := &http.Client{Transport: tracing.NewTransport(base, cfg)}
	for _, host := range []string{"api.example:8443", ""} {
		req := &http.Request{Method: "GET", URL: &url.URL{Scheme: "https", Path: "/v1/models"}, Host: host, Header: http.Header{}}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	mp.collect(t)
	got := mp.by(tracing.MetricClientDuration, semconv.ServerAddressKey, semconv.ServerPortKey)
	if len(got) != 2 || got["api.example/8443"] != 1 || got["/443"] != 1 {
		t.Errorf("duration by server.address/port: %v", got)
	}
	for _, p := range mp.points[tracing.MetricClientDuration] {
		if v, ok := p.attrs.Value(semconv.ServerAddressKey); ok && v.AsString() == "" {
			t.Error("an empty server.address recorded")
		}
	}
}
