package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/streamguard/streamguard/tracing"
)

// tracingEvents is how many events the streamed response of
// BenchmarkTracingStream holds, the terminal data: [DONE] included.
const tracingEvents = 1000

// tracingEvent returns event i of that stream: an OpenAI chat chunk of a
// fixed length, so that a read buffer of tracingEventLen bytes reads one
// event per Read, as a per-token consumer does.
func tracingEvent(i int) []byte {
	if i == tracingEvents-1 {
		// [DONE], padded with an SSE comment line to the same length.
		done := []byte("data: [DONE]\n\n")
		pad := bytes.Repeat([]byte("x"), tracingEventLen-len(done)-2)
		return append(append(append([]byte(":"), pad...), '\n'), done...)
	}
	return fmt.Appendf(nil, "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"delta\":{\"content\":\"tok%06d\"}}]}\n\n", i)
}

var tracingEventLen = len(fmt.Appendf(nil, "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"delta\":{\"content\":\"tok%06d\"}}]}\n\n", 0))

// tracingStream returns the events of the stream and their concatenation.
func tracingStream() ([][]byte, []byte) {
	events := make([][]byte, tracingEvents)
	var all []byte
	for i := range events {
		events[i] = tracingEvent(i)
		all = append(all, events[i]...)
	}
	return events, all
}

// tracingSettings are the tracer settings each instrumented transport is
// measured with: a no-op provider (the layer compiled in, nothing
// recorded) and the SDK sampling every span into a no-op exporter with W3C
// propagation (the whole cost of recording, without an exporter's I/O).
func tracingSettings(b *testing.B) []struct {
	name string
	tp   trace.TracerProvider
	prop propagation.TextMapPropagator
} {
	rec := sdktrace.NewTracerProvider(
		sdktrace.WithSampler(sdktrace.AlwaysSample()),
		sdktrace.WithSyncer(tracetest.NewNoopExporter()))
	b.Cleanup(func() { rec.Shutdown(context.Background()) })
	return []struct {
		name string
		tp   trace.TracerProvider
		prop propagation.TextMapPropagator
	}{
		{"noop", noop.NewTracerProvider(), propagation.NewCompositeTextMapPropagator()},
		{"rec", rec, propagation.TraceContext{}},
	}
}

// tracingLayers are the transports compared: the raw base, this package's
// transport and otelhttp's, each of the instrumented ones with both tracer
// settings.
func tracingLayers(b *testing.B) []struct {
	name string
	wrap func(http.RoundTripper) http.RoundTripper
} {
	layers := []struct {
		name string
		wrap func(http.RoundTripper) http.RoundTripper
	}{{"raw", func(rt http.RoundTripper) http.RoundTripper { return rt }}}
	settings := tracingSettings(b)
	for _, s := range settings {
		layers = append(layers, struct {
			name string
			wrap func(http.RoundTripper) http.RoundTripper
		}{"tracing-" + s.name, func(rt http.RoundTripper) http.RoundTripper {
			return tracing.NewTransport(rt, tracing.Config{TracerProvider: s.tp, Propagators: s.prop})
		}})
	}
	for _, s := range settings {
		layers = append(layers, struct {
			name string
			wrap func(http.RoundTripper) http.RoundTripper
		}{"otelhttp-" + s.name, func(rt http.RoundTripper) http.RoundTripper {
			return otelhttp.NewTransport(rt, otelhttp.WithTracerProvider(s.tp), otelhttp.WithPropagators(s.prop))
		}})
	}
	return layers
}

// tracingSource is where a benchmark's responses come from: memory (a stub
// base transport, so that only the layers' own cost is measured), or a
// loopback server over HTTP/1.1 or HTTP/2 with TLS.
type tracingSource struct {
	name string
	url  string
	base func(b *testing.B) http.RoundTripper
}

func tracingSources(b *testing.B, h http.Handler, mem func(*http.Request) *http.Response) []tracingSource {
	srcs := []tracingSource{{name: "mem", url: "http://stub.invalid", base: func(*testing.B) http.RoundTripper {
		return stubTransport(func(r *http.Request) (*http.Response, error) {
			if r.Body != nil {
				r.Body.Close()
			}
			return mem(r), nil
		})
	}}}
	for _, proto := range []string{"h1", "h2"} {
		srv := httptest.NewUnstartedServer(h)
		if proto == "h2" {
			srv.EnableHTTP2 = true
			srv.StartTLS()
		} else {
			srv.Start()
		}
		b.Cleanup(srv.Close)
		srcs = append(srcs, tracingSource{name: proto, url: srv.URL, base: func(b *testing.B) http.RoundTripper {
			t := http.DefaultTransport.(*http.Transport).Clone()
			if proto == "h2" {
				t.TLSClientConfig = srv.Client().Transport.(*http.Transport).TLSClientConfig.Clone()
				t.ForceAttemptHTTP2 = true
			}
			b.Cleanup(t.CloseIdleConnections)
			return t
		}})
	}
	return srcs
}

// BenchmarkTracingStream reads a streamed response of 1000 small SSE events
// (about 110 bytes each, one event per Read, the server flushing each) to
// its end through each layer, against the raw transport in the same run.
// The span lasts the stream; allocs/op beyond raw is the per-request cost,
// and allocs/event (measured on an endless stream, over 1000 single-event
// Reads of the traced body) is the per-event cost, which must be 0.
//
//	cd bench && go test -run '^$' -bench Tracing -benchmem -count 3
func BenchmarkTracingStream(b *testing.B) {
	events, all := tracingStream()
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		rc := http.NewResponseController(w)
		for _, ev := range events {
			if _, err := w.Write(ev); err != nil {
				return
			}
			rc.Flush() // a model server flushes every token
		}
	})
	mem := func(r *http.Request) *http.Response {
		return &http.Response{
			Status: "200 OK", StatusCode: 200, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
			Header:        http.Header{"Content-Type": {"text/event-stream"}},
			Body:          io.NopCloser(bytes.NewReader(all)),
			ContentLength: -1,
			Request:       r,
		}
	}
	for _, src := range tracingSources(b, h, mem) {
		for _, layer := range tracingLayers(b) {
			b.Run("src="+src.name+"/via="+layer.name, func(b *testing.B) {
				rt := layer.wrap(src.base(b))
				buf := make([]byte, tracingEventLen)
				b.SetBytes(int64(len(all)))
				b.ReportAllocs()
				for b.Loop() {
					req, err := http.NewRequest(http.MethodGet, src.url+"/v1/chat/completions", nil)
					if err != nil {
						b.Fatal(err)
					}
					resp, err := rt.RoundTrip(req)
					if err != nil {
						b.Fatal(err)
					}
					n, err := readAll(resp.Body, buf)
					resp.Body.Close()
					if err != nil || n != int64(len(all)) {
						b.Fatalf("read %d of %d bytes: %v", n, len(all), err)
					}
				}
				if src.name == "mem" && layer.name != "raw" {
					b.ReportMetric(allocsPerEvent(b, layer.wrap), "allocs/event")
				}
			})
		}
	}
}

// readAll reads r to its end through buf and returns the bytes read.
func readAll(r io.Reader, buf []byte) (int64, error) {
	var total int64
	for {
		n, err := r.Read(buf)
		total += int64(n)
		if err == io.EOF {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
}

// endlessEvents is a body that delivers the same event on every Read and
// never ends: reading it through a layer measures the layer's cost per
// event with no per-request cost mixed in.
type endlessEvents struct{ ev []byte }

func (e endlessEvents) Read(p []byte) (int, error) { return copy(p, e.ev), nil }
func (e endlessEvents) Close() error               { return nil }

// allocsPerEvent returns the allocations per single-event Read of a body
// that came through the layer wrap builds.
func allocsPerEvent(b *testing.B, wrap func(http.RoundTripper) http.RoundTripper) float64 {
	ev := tracingEvent(0)
	rt := wrap(stubTransport(func(r *http.Request) (*http.Response, error) {
		return &http.Response{StatusCode: 200, ProtoMajor: 1, ProtoMinor: 1, Header: http.Header{},
			Body: endlessEvents{ev}, ContentLength: -1, Request: r}, nil
	}))
	req, _ := http.NewRequest(http.MethodGet, "http://stub.invalid/v1/chat/completions", nil)
	resp, err := rt.RoundTrip(req)
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	buf := make([]byte, len(ev))
	return testing.AllocsPerRun(tracingEvents, func() {
		if _, err := resp.Body.Read(buf); err != nil {
			b.Fatal(err)
		}
	})
}

// BenchmarkTracingRequest measures the per-request cost of each layer on a
// small non-streamed answer (workload C's reply), next to otelhttp's: from
// a stub base transport (the layer's own cost) and over loopback HTTP/1.1
// and HTTP/2.
//
//	cd bench && go test -run '^$' -bench TracingRequest -benchmem -count 3
func BenchmarkTracingRequest(b *testing.B) {
	reply := []byte(`{"id":"chatcmpl-1","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"hello"},"finish_reason":"stop"}]}`)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.Write(reply)
	})
	mem := func(r *http.Request) *http.Response {
		return &http.Response{
			Status: "200 OK", StatusCode: 200, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
			Header:        http.Header{"Content-Type": {"application/json"}},
			Body:          io.NopCloser(bytes.NewReader(reply)),
			ContentLength: int64(len(reply)),
			Request:       r,
		}
	}
	prompt := []byte(`{"model":"m","messages":[{"role":"user","content":"hi"}],"max_tokens":16}`)
	for _, src := range tracingSources(b, h, mem) {
		for _, layer := range tracingLayers(b) {
			b.Run("src="+src.name+"/via="+layer.name, func(b *testing.B) {
				rt := layer.wrap(src.base(b))
				buf := make([]byte, 512)
				b.SetBytes(int64(len(reply)))
				b.ReportAllocs()
				for b.Loop() {
					req, err := http.NewRequest(http.MethodPost, src.url+"/v1/chat/completions", bytes.NewReader(prompt))
					if err != nil {
						b.Fatal(err)
					}
					req.Header.Set("Content-Type", "application/json")
					resp, err := rt.RoundTrip(req)
					if err != nil {
						b.Fatal(err)
					}
					n, err := readAll(resp.Body, buf)
					resp.Body.Close()
					if err != nil || n != int64(len(reply)) {
						b.Fatalf("read %d bytes: %v", n, err)
					}
				}
			})
		}
	}
}
