package tracing_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/streamguard/streamguard"
	"github.com/streamguard/streamguard/internal/streamstat"
	"github.com/streamguard/streamguard/tracing"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/embedded"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// waitTimeout bounds every wait on a channel in these tests.
const waitTimeout = 10 * time.Second

// fixture is an SDK tracer provider with an in-memory recorder, and a
// channel that receives every span as it ends.
type fixture struct {
	rec   *tracetest.SpanRecorder
	tp    *sdktrace.TracerProvider
	ended chan sdktrace.ReadOnlySpan
	cfg   tracing.Config
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{rec: tracetest.NewSpanRecorder(), ended: make(chan sdktrace.ReadOnlySpan, 64)}
	f.tp = sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(f.rec), sdktrace.WithSpanProcessor(endNotifier(f.ended)))
	t.Cleanup(func() { f.tp.Shutdown(context.Background()) })
	f.cfg = tracing.Config{TracerProvider: f.tp, Propagators: propagation.TraceContext{}}
	return f
}

// onlySpan returns the one span that ended, failing when there are others.
func (f *fixture) onlySpan(t *testing.T) sdktrace.ReadOnlySpan {
	t.Helper()
	spans := f.rec.Ended()
	if len(spans) != 1 {
		t.Fatalf("%d spans ended, want 1: %v", len(spans), names(spans))
	}
	return spans[0]
}

// waitSpan waits for the next span to end.
func (f *fixture) waitSpan(t *testing.T) sdktrace.ReadOnlySpan {
	t.Helper()
	select {
	case s := <-f.ended:
		return s
	case <-time.After(waitTimeout):
		t.Fatal("no span ended")
		return nil
	}
}

func names(spans []sdktrace.ReadOnlySpan) []string {
	var out []string
	for _, s := range spans {
		out = append(out, s.Name())
	}
	return out
}

type endNotifier chan sdktrace.ReadOnlySpan

func (n endNotifier) OnStart(context.Context, sdktrace.ReadWriteSpan) {}
func (n endNotifier) OnEnd(s sdktrace.ReadOnlySpan) {
	select {
	case n <- s:
	default:
	}
}
func (n endNotifier) Shutdown(context.Context) error   { return nil }
func (n endNotifier) ForceFlush(context.Context) error { return nil }

// attrs returns a span's attributes by key.
func attrs(s sdktrace.ReadOnlySpan) map[string]attribute.Value {
	m := make(map[string]attribute.Value)
	for _, kv := range s.Attributes() {
		m[string(kv.Key)] = kv.Value
	}
	return m
}

// want checks that the span's attributes hold each key with the value's
// text, and that each key mapped to "" is absent.
func want(t *testing.T, s sdktrace.ReadOnlySpan, kv map[string]string) {
	t.Helper()
	got := attrs(s)
	for k, v := range kv {
		g, ok := got[k]
		switch {
		case v == "" && ok:
			t.Errorf("%s: %s = %q, want it absent", s.Name(), k, g.String())
		case v != "" && !ok:
			t.Errorf("%s: %s absent, want %q", s.Name(), k, v)
		case v != "" && g.String() != v:
			t.Errorf("%s: %s = %q, want %q", s.Name(), k, g.String(), v)
		}
	}
}

func wantStatus(t *testing.T, s sdktrace.ReadOnlySpan, code codes.Code) {
	t.Helper()
	if s.Status().Code != code {
		t.Errorf("%s: status %v %q, want %v", s.Name(), s.Status().Code, s.Status().Description, code)
	}
}

// everything returns all the text a span carries: name, attributes, status,
// events and their attributes.
func everything(s sdktrace.ReadOnlySpan) string {
	var b strings.Builder
	b.WriteString(s.Name() + "\n" + s.Status().Description + "\n")
	for _, kv := range s.Attributes() {
		fmt.Fprintf(&b, "%s=%s\n", kv.Key, kv.Value.String())
	}
	for _, e := range s.Events() {
		b.WriteString(e.Name + "\n")
		for _, kv := range e.Attributes {
			fmt.Fprintf(&b, "%s=%s\n", kv.Key, kv.Value.String())
		}
	}
	return b.String()
}

// rtFunc is a RoundTripper from a function.
type rtFunc func(*http.Request) (*http.Response, error)

func (f rtFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// quietServer starts an httptest server whose error log is discarded (the
// panics and aborts these tests provoke would otherwise be logged).
func quietServer(t *testing.T, h http.Handler, tls bool) *httptest.Server {
	t.Helper()
	srv := httptest.NewUnstartedServer(h)
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	if tls {
		srv.EnableHTTP2 = true
		srv.StartTLS()
	} else {
		srv.Start()
	}
	t.Cleanup(srv.Close)
	return srv
}

// protocols are the two transports every loopback test runs over.
var protocols = []struct {
	name string
	tls  bool
}{{"http1", false}, {"http2", true}}

// fakeGuard stands in for the sse package's guard: it passes the body
// through, counts events (blank-line separated), notes the first event and
// the terminal data: [DONE], and at the end of the body returns end (nil: a
// clean io.EOF) instead of io.EOF. It implements streamstat.Reporter.
type fakeGuard struct {
	rc  io.ReadCloser
	end *streamguard.Error

	mu    sync.Mutex
	stats streamstat.Stats
	tail  []byte
}

func (g *fakeGuard) Read(p []byte) (int, error) {
	n, err := g.rc.Read(p)
	g.mu.Lock()
	g.stats.Bytes += int64(n)
	g.tail = append(g.tail, p[:n]...)
	for {
		i := strings.Index(string(g.tail), "\n\n")
		if i < 0 {
			break
		}
		ev := string(g.tail[:i])
		g.tail = g.tail[i+2:]
		g.stats.Events++
		if g.stats.FirstEvent.IsZero() {
			g.stats.FirstEvent = time.Now()
		}
		if ev == "data: [DONE]" {
			g.stats.Terminal = true
			g.stats.Dialect = "openai"
		}
	}
	g.mu.Unlock()
	if err == io.EOF && g.end != nil {
		e := *g.end
		e.Events = g.stats.Events
		return n, &e
	}
	return n, err
}

func (g *fakeGuard) Close() error { return g.rc.Close() }

func (g *fakeGuard) StreamStats() streamstat.Stats {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.stats
}

// guarded wraps every 2xx response body of base in a fakeGuard ending with
// end, as the sse transport does beneath the tracing layer.
func guarded(base http.RoundTripper, end *streamguard.Error) http.RoundTripper {
	return rtFunc(func(r *http.Request) (*http.Response, error) {
		resp, err := base.RoundTrip(r)
		if err == nil && resp.StatusCode < 300 {
			resp.Body = &fakeGuard{rc: resp.Body, end: end}
		}
		return resp, err
	})
}

// countingProvider wraps a TracerProvider and counts the End calls of its
// spans, which the SDK itself would silently deduplicate.
type countingProvider struct {
	embedded.TracerProvider
	tp   trace.TracerProvider
	ends *atomic.Int64
}

func (p countingProvider) Tracer(name string, opts ...trace.TracerOption) trace.Tracer {
	return countingTracer{tr: p.tp.Tracer(name, opts...), ends: p.ends}
}

type countingTracer struct {
	embedded.Tracer
	tr   trace.Tracer
	ends *atomic.Int64
}

func (t countingTracer) Start(ctx context.Context, name string, opts ...trace.SpanStartOption) (context.Context, trace.Span) {
	ctx, s := t.tr.Start(ctx, name, opts...)
	cs := &countingSpan{Span: s, ends: t.ends}
	return trace.ContextWithSpan(ctx, cs), cs
}

type countingSpan struct {
	trace.Span
	ends *atomic.Int64
}

func (s *countingSpan) End(opts ...trace.SpanEndOption) {
	s.ends.Add(1)
	s.Span.End(opts...)
}
