package middleware_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/streamguard/streamguard/middleware"
	"github.com/streamguard/streamguard/tracing"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

// serveLayer starts h behind one layer of the server stack alone.
func serveLayer(t *testing.T, h2 bool, layer func(http.Handler) http.Handler, h http.HandlerFunc) *httptest.Server {
	t.Helper()
	srv := httptest.NewUnstartedServer(layer(h))
	srv.EnableHTTP2 = h2
	if h2 {
		srv.StartTLS()
	} else {
		srv.Start()
	}
	t.Cleanup(srv.Close)
	return srv
}

// Each layer of the server stack does its one job around a plain handler,
// without the others.
func TestServerLayersAlone(t *testing.T) {
	protocols(t, func(t *testing.T, h2 bool) {
		t.Run("Drain", func(t *testing.T) {
			drain := make(chan struct{})
			close(drain)
			srv := serveLayer(t, h2, middleware.Drain(middleware.ServerConfig{Drain: drain}), func(w http.ResponseWriter, r *http.Request) {
				t.Error("the handler ran while draining")
			})
			resp, b, _ := rawGet(t, srv, "/")
			if resp.StatusCode != 503 || resp.Header.Get("Retry-After") != "1" || jsonError(t, b) != middleware.DrainMessage {
				t.Errorf("%d %q", resp.StatusCode, b)
			}
		})
		t.Run("LimitRequestBody", func(t *testing.T) {
			srv := serveLayer(t, h2, middleware.LimitRequestBody(middleware.ServerConfig{MaxBodyBytes: 10}), func(w http.ResponseWriter, r *http.Request) {
				io.ReadAll(r.Body) // over the cap: the layer answers
			})
			resp, err := srv.Client().Post(srv.URL, "text/plain", io.MultiReader(strings.NewReader(strings.Repeat("x", 100))))
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 413 || !strings.Contains(jsonError(t, b), "exceeds maximum size of 10 bytes") {
				t.Errorf("%d %q", resp.StatusCode, b)
			}
		})
		t.Run("Timeout", func(t *testing.T) {
			srv := serveLayer(t, h2, middleware.Timeout(middleware.ServerConfig{Budget: 20 * time.Millisecond}), func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/event-stream")
				writeFlush(w, "data: {\"id\":\"1\"}\n\n")
				<-r.Context().Done()
			})
			_, b, err := rawGet(t, srv, "/")
			events, _ := parseSSE(b)
			if err != nil || len(events) != 2 || events[1].typ != "error" || !strings.Contains(events[1].data, `"reason":"timeout"`) {
				t.Errorf("%q %v", b, err)
			}
		})
		t.Run("Recoverer", func(t *testing.T) {
			srv := serveLayer(t, h2, middleware.Recoverer(middleware.ServerConfig{Logger: nil}), func(w http.ResponseWriter, r *http.Request) {
				panic("boom")
			})
			resp, b, _ := rawGet(t, srv, "/")
			if resp.StatusCode != 500 || jsonError(t, b) == "" || strings.Contains(string(b), "boom") {
				t.Errorf("%d %q", resp.StatusCode, b)
			}
		})
		t.Run("Heartbeat", func(t *testing.T) {
			seen := make(chan struct{})
			srv := serveLayer(t, h2, middleware.Heartbeat(middleware.ServerConfig{Heartbeat: 5 * time.Millisecond}),
				afterHeartbeat("data: {\"id\":\"1\"}\n\n", "data: [DONE]\n\n", seen))
			got := readPastHeartbeat(t, srv, seen)
			if events, comments := parseSSE(got); len(events) != 2 || comments == 0 {
				t.Errorf("%q", got)
			}
		})
	})
}

// NewHandler gives the handler one wrapper around net/http's writer, with
// tracing on: the span reads what was sent from the stream writer itself.
func TestServerOneWrapper(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	defer tp.Shutdown(context.Background())
	depth := make(chan int, 1)
	srv := serve(t, false, middleware.ServerConfig{Tracing: tracingConfig(tp)}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := 0
		for u, ok := w.(interface{ Unwrap() http.ResponseWriter }); ok; u, ok = u.Unwrap().(interface{ Unwrap() http.ResponseWriter }) {
			n++
		}
		depth <- n
		io.WriteString(w, "hello")
	}))
	if _, b, err := rawGet(t, srv, "/"); err != nil || string(b) != "hello" {
		t.Fatalf("%q %v", b, err)
	}
	if n := <-depth; n != 1 {
		t.Errorf("%d wrappers around net/http's writer, want 1", n)
	}
	spans := rec.Ended()
	if len(spans) != 1 {
		t.Fatalf("%d spans", len(spans))
	}
	var bytes int64
	for _, a := range spans[0].Attributes() {
		if a.Key == tracing.AttrStreamBytes {
			bytes = a.Value.AsInt64()
		}
	}
	if bytes != 5 {
		t.Errorf("the span counts %d bytes sent, want 5", bytes)
	}
}
