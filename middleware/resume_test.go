package middleware_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/streamguard/streamguard/gatewaytest"
	"github.com/streamguard/streamguard/middleware"
	"github.com/streamguard/streamguard/sse"
	"github.com/streamguard/streamguard/tracing"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

// TestStackResumes runs a POST through the whole client stack, its body
// made replayable by the retry layer, against a server with resumable
// streams that cuts it twice: the caller reads one complete stream, the
// attempt's span carries one event per resume, and the resumes are counted.
func TestStackResumes(t *testing.T) {
	const n = 30
	for _, h2 := range []bool{false, true} {
		name, start := "HTTP/1.1", gatewaytest.NewServer
		if h2 {
			name, start = "HTTP/2", gatewaytest.NewTLSServer
		}
		t.Run(name, func(t *testing.T) {
			srv := start(gatewaytest.ResumableStream(n))
			defer srv.Close()
			rec := tracetest.NewSpanRecorder()
			reader := sdkmetric.NewManualReader()
			cfg := middleware.Config{
				Tracing: tracing.Config{
					TracerProvider: sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec)),
					MeterProvider:  sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)),
				},
				Stream: sse.Config{Resume: sse.ResumeConfig{Backoff: func() backoff.BackOff { return backoff.NewConstantBackOff(time.Millisecond) }}},
			}
			client := clientFor(t, srv, cfg)
			srv.Script(gatewaytest.Cut(4), gatewaytest.Reset(3), gatewaytest.Pass())
			// A body of known length without GetBody: the retry layer
			// buffers it and gives the attempt a GetBody, which the
			// resume uses.
			body := io.NopCloser(strings.NewReader(`{"model":"m","stream":true}`))
			req, _ := http.NewRequest(http.MethodPost, srv.URL+"/v1/chat/completions", body)
			req.ContentLength = int64(len(`{"model":"m","stream":true}`))
			req.Header.Set("Authorization", "Bearer sk-test-0123456789")
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil || strings.Count(string(got), "\n\n") != n+1 || !strings.HasSuffix(string(got), "data: [DONE]\n\n") {
				t.Fatalf("error %v; got %d events", err, strings.Count(string(got), "\n\n"))
			}
			for i, r := range srv.Gateway.Records() {
				if string(r.Body) != `{"model":"m","stream":true}` {
					t.Errorf("request %d sent body %q", i, r.Body)
				}
			}
			spans := rec.Ended()
			if len(spans) != 1 {
				t.Fatalf("%d spans, want the one attempt's", len(spans))
			}
			resumes := 0
			for _, ev := range spans[0].Events() {
				if ev.Name == tracing.EventResume {
					resumes++
				}
			}
			if resumes != 2 {
				t.Fatalf("%d resume events on the span, want 2", resumes)
			}
			var rm metricdata.ResourceMetrics
			if err := reader.Collect(context.Background(), &rm); err != nil {
				t.Fatal(err)
			}
			if c := counterSum(rm, tracing.MetricClientResumes); c != 2 {
				t.Fatalf("%s = %d, want 2", tracing.MetricClientResumes, c)
			}
		})
	}
}

// counterSum adds up the data points of the int64 counter named name.
func counterSum(rm metricdata.ResourceMetrics, name string) int64 {
	var sum int64
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if s, ok := m.Data.(metricdata.Sum[int64]); ok && m.Name == name {
				for _, dp := range s.DataPoints {
					sum += dp.Value
				}
			}
		}
	}
	return sum
}
