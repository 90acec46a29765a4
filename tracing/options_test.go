package tracing_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/streamguard/streamguard/gatewaytest"
	"github.com/streamguard/streamguard/internal/streamstat"
	"github.com/streamguard/streamguard/tracing"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// TestFilter: a request the filter rejects gets no span and no trace
// context, on either side; the others are traced.
func TestFilter(t *testing.T) {
	f, mp, cfg := meteredFixture(t)
	cfg.Filter = func(r *http.Request) bool { return r.URL.Path != "/health" }

	var sawTraceparent []bool
	srv := quietServer(t, tracing.NewHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sawTraceparent = append(sawTraceparent, r.Header.Get("Traceparent") != "")
		io.WriteString(w, "ok")
	}), cfg), false)
	client := &http.Client{Transport: tracing.NewTransport(srv.Client().Transport, cfg)}
	for _, path := range []string{"/health", "/v1/chat/completions"} {
		getAll(t, client, srv.URL+path)
	}
	f.waitSpan(t)
	f.waitSpan(t)
	if got := names(f.rec.Ended()); len(got) != 2 {
		t.Errorf("spans %v, want the client and server spans of the traced request only", got)
	}
	if len(sawTraceparent) != 2 || sawTraceparent[0] || !sawTraceparent[1] {
		t.Errorf("traceparent sent %v, want only on the traced request", sawTraceparent)
	}
	mp.collect(t)
	if n, m := mp.count(tracing.MetricClientDuration), mp.count(tracing.MetricServerDuration); n != 1 || m != 1 {
		t.Errorf("durations recorded: client %d, server %d, want 1 each", n, m)
	}
}

// TestSpanNameFormatter: the formatter gets the conventional name and the
// request, on the client and on a server whose mux matches inside
// NewHandler (the route known only after the handler).
func TestSpanNameFormatter(t *testing.T) {
	f := newFixture(t)
	cfg := f.cfg
	cfg.SpanNameFormatter = func(op string, r *http.Request) string { return "llm " + op + " " + r.Header.Get("X-Op") }
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/{model}/chat", func(w http.ResponseWriter, r *http.Request) {})
	srv := quietServer(t, tracing.NewHandler(mux, cfg), false)
	client := &http.Client{Transport: tracing.NewTransport(srv.Client().Transport, cfg)}
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/v1/llama/chat", nil)
	req.Header.Set("X-Op", "chat")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	got := map[string]bool{}
	for range 2 {
		got[f.waitSpan(t).Name()] = true
	}
	if !got["llm POST chat"] || !got["llm POST /v1/{model}/chat chat"] {
		t.Errorf("span names %v", got)
	}
}

// TestPublicEndpoint: a public endpoint's span starts a new trace and links
// to the caller's context; otherwise the caller's span is the parent.
func TestPublicEndpoint(t *testing.T) {
	cases := []struct {
		name   string
		set    func(*tracing.Config)
		public bool
	}{
		{"private", func(*tracing.Config) {}, false},
		{"PublicEndpoint", func(c *tracing.Config) { c.PublicEndpoint = true }, true},
		{"PublicEndpointFn", func(c *tracing.Config) {
			c.PublicEndpointFn = func(r *http.Request) bool { return r.Header.Get("X-Internal") == "" }
		}, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t)
			cfg := f.cfg
			c.set(&cfg)
			srv := quietServer(t, tracing.NewHandler(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}), cfg), false)

			caller := trace.NewSpanContext(trace.SpanContextConfig{
				TraceID: trace.TraceID{1, 2, 3}, SpanID: trace.SpanID{4, 5, 6}, TraceFlags: trace.FlagsSampled, Remote: true})
			req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
			propagation.TraceContext{}.Inject(trace.ContextWithSpanContext(context.Background(), caller), propagation.HeaderCarrier(req.Header))
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			s := f.waitSpan(t)

			parented := s.Parent().SpanID() == caller.SpanID() && s.SpanContext().TraceID() == caller.TraceID()
			linked := len(s.Links()) == 1 && s.Links()[0].SpanContext.SpanID() == caller.SpanID()
			if c.public && (parented || !linked || s.Parent().IsValid()) {
				t.Errorf("public endpoint: parent %v, links %d: want a new root linked to the caller", s.Parent(), len(s.Links()))
			}
			if !c.public && (!parented || len(s.Links()) != 0) {
				t.Errorf("private endpoint: parent %v, links %d: want the caller as parent", s.Parent(), len(s.Links()))
			}
		})
	}
}

// TestResumeErrorScrubbed: a resume's error that echoes the request's key
// reaches the span event redacted.
func TestResumeErrorScrubbed(t *testing.T) {
	const key = "sk-live-resume-secret-123456"
	f := newFixture(t)
	srv := gatewaytest.NewServer(gatewaytest.ChatStream(1))
	defer srv.Close()
	rt := withResumes(srv.Client().Transport, streamstat.Resume{
		Protocol: "sse-id", Cause: "stalled", StatusCode: 401, Err: "Incorrect API key provided: " + key})
	getAll(t, &http.Client{Transport: tracing.NewTransport(rt, f.cfg)}, srv.URL+"/v1/chat/completions?api_key="+key)
	if all := everything(f.onlySpan(t)); strings.Contains(all, key) || !strings.Contains(all, tracing.EventResume) {
		t.Errorf("span:\n%s", all)
	}
}
