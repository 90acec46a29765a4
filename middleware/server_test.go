package middleware_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/streamguard/streamguard"
	"github.com/streamguard/streamguard/middleware"
	"github.com/streamguard/streamguard/tracing"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

// serve starts h behind NewHandler, over HTTP/1.1 or HTTP/2 with TLS.
func serve(t *testing.T, h2 bool, cfg middleware.ServerConfig, h http.Handler) *httptest.Server {
	t.Helper()
	srv := httptest.NewUnstartedServer(middleware.NewHandler(h, cfg))
	if h2 {
		srv.EnableHTTP2 = true
		srv.StartTLS()
	} else {
		srv.Start()
	}
	t.Cleanup(srv.Close)
	return srv
}

func protocols(t *testing.T, f func(t *testing.T, h2 bool)) {
	for _, h2 := range []bool{false, true} {
		name := "HTTP/1.1"
		if h2 {
			name = "HTTP/2"
		}
		t.Run(name, func(t *testing.T) { f(t, h2) })
	}
}

// rawGet calls url with the server's own client (no streamguard stack), so
// that the test sees exactly what went over the wire.
func rawGet(t *testing.T, srv *httptest.Server, path string) (*http.Response, []byte, error) {
	t.Helper()
	resp, err := srv.Client().Get(srv.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp, b, err
}

func jsonError(t *testing.T, b []byte) string {
	t.Helper()
	var v struct {
		Error string `json:"error"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("body %q is not the platform's JSON error: %v", b, err)
	}
	return v.Error
}

func sseHandler(before func(w http.ResponseWriter, r *http.Request)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\"}\n\n")
		http.NewResponseController(w).Flush()
		before(w, r)
	})
}

func TestServerBudget(t *testing.T) {
	protocols(t, func(t *testing.T, h2 bool) {
		causes := make(chan error, 3)
		wait := func(w http.ResponseWriter, r *http.Request) {
			<-r.Context().Done()
			causes <- context.Cause(r.Context())
		}
		mux := http.NewServeMux()
		mux.HandleFunc("/headers", wait)
		mux.Handle("/sse", sseHandler(wait))
		mux.HandleFunc("/json", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `{"partial":`)
			http.NewResponseController(w).Flush()
			wait(w, r)
			w.Write([]byte(`"too late"}`)) // refused: the response is over
		})
		srv := serve(t, h2, middleware.ServerConfig{Budget: 50 * time.Millisecond}, mux)

		resp, b, err := rawGet(t, srv, "/headers")
		if err != nil || resp.StatusCode != 504 || resp.Header.Get("Content-Type") != "application/json" ||
			!strings.Contains(jsonError(t, b), "budget") {
			t.Fatalf("before headers: %d %q %v", resp.StatusCode, b, err)
		}
		if c := <-causes; !errors.Is(c, streamguard.ErrBudgetExceeded) {
			t.Errorf("handler's context cause %v", c)
		}

		resp, b, err = rawGet(t, srv, "/sse")
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("sse: %v", err)
		}
		frames := strings.Split(strings.TrimSuffix(string(b), "\n\n"), "\n\n")
		if len(frames) != 2 || !strings.HasPrefix(frames[1], "data: {\"error\":{") || !strings.HasSuffix(frames[1], "\nevent: error") || !strings.Contains(frames[1], `"reason":"timeout"`) {
			t.Fatalf("sse body %q, want one event and one failure frame", b)
		}
		<-causes

		_, b, err = rawGet(t, srv, "/json")
		if err == nil || string(b) != `{"partial":` {
			t.Fatalf("json after headers: %q, %v; want a truncated body", b, err)
		}
		<-causes
	})
}

func TestServerTimeoutHeader(t *testing.T) {
	got := make(chan time.Duration, 1)
	srv := serve(t, false, middleware.ServerConfig{}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d, _ := r.Context().Deadline()
		got <- time.Until(d)
	}))
	req, _ := http.NewRequest("GET", srv.URL, nil)
	req.Header.Set(middleware.TimeoutHeader, "30000")
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if d := <-got; d > 30*time.Second || d < 25*time.Second {
		t.Errorf("deadline in %v, want the header's 30 s", d)
	}
	// A larger header does not raise the budget; garbage is ignored.
	for _, v := range []string{"99999999999", "-5", "soon"} {
		req.Header.Set(middleware.TimeoutHeader, v)
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if d := <-got; d > streamguard.SyncBudget || d < streamguard.SyncBudget-5*time.Second {
			t.Errorf("header %q: deadline in %v", v, d)
		}
	}
}

func TestServerPanics(t *testing.T) {
	protocols(t, func(t *testing.T, h2 bool) {
		mux := http.NewServeMux()
		mux.HandleFunc("/before", func(w http.ResponseWriter, r *http.Request) { panic("boom") })
		mux.Handle("/sse", sseHandler(func(w http.ResponseWriter, r *http.Request) { panic("boom") }))
		mux.HandleFunc("/raw", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/octet-stream")
			io.WriteString(w, "part;")
			http.NewResponseController(w).Flush()
			panic("boom")
		})
		srv := serve(t, h2, middleware.ServerConfig{}, mux)
		srv.Config.ErrorLog = quietLog()

		resp, b, err := rawGet(t, srv, "/before")
		if err != nil || resp.StatusCode != 500 || jsonError(t, b) == "" {
			t.Fatalf("before headers: %d %q %v", resp.StatusCode, b, err)
		}
		if strings.Contains(string(b), "boom") {
			t.Errorf("the panic value reached the client: %q", b)
		}
		_, b, err = rawGet(t, srv, "/sse")
		if err != nil || !strings.Contains(string(b), "\nevent: error\n\n") || !strings.Contains(string(b), `"reason":"model_error"`) {
			t.Fatalf("sse: %q %v", b, err)
		}
		_, b, err = rawGet(t, srv, "/raw")
		if err == nil || string(b) != "part;" {
			t.Fatalf("raw: %q %v; want a truncated body", b, err)
		}
	})
}

func TestServerBodyLimit(t *testing.T) {
	called := false
	mux := http.NewServeMux()
	mux.HandleFunc("/writeerror", func(w http.ResponseWriter, r *http.Request) {
		called = true
		if _, err := io.ReadAll(r.Body); err != nil {
			middleware.WriteError(w, r, err)
			return
		}
		io.WriteString(w, "ok")
	})
	mux.HandleFunc("/silent", func(w http.ResponseWriter, r *http.Request) {
		called = true
		io.ReadAll(r.Body) // the error is dropped, nothing is written
	})
	srv := serve(t, false, middleware.ServerConfig{MaxBodyBytes: 100}, mux)
	post := func(path string, body io.Reader) (int, string) {
		resp, err := srv.Client().Post(srv.URL+path, "application/json", body)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, jsonError(t, b)
	}
	if code, msg := post("/writeerror", strings.NewReader(strings.Repeat("x", 101))); code != 413 ||
		msg != "payload size of 101 bytes exceeds maximum size of 100 bytes" || called {
		t.Errorf("by length: %d %q (handler called: %v)", code, msg, called)
	}
	for _, path := range []string{"/writeerror", "/silent"} {
		code, msg := post(path, io.MultiReader(strings.NewReader(strings.Repeat("x", 150)))) // chunked
		if code != 413 || msg != "payload size of at least 101 bytes exceeds maximum size of 100 bytes" {
			t.Errorf("%s chunked: %d %q", path, code, msg)
		}
	}
	resp, err := srv.Client().Post(srv.URL+"/writeerror", "application/json", strings.NewReader("small"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("small body: %d", resp.StatusCode)
	}
}

func TestServerHeartbeat(t *testing.T) {
	protocols(t, func(t *testing.T, h2 bool) {
		seen := make(chan struct{})
		srv := serve(t, h2, middleware.ServerConfig{Heartbeat: 10 * time.Millisecond}, sseHandler(func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-seen:
			case <-r.Context().Done():
				return
			}
			io.WriteString(w, "data: [DONE]\n\n")
		}))
		resp, err := srv.Client().Get(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		br := bufio.NewReader(resp.Body)
		var lines []string
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				t.Fatalf("after %q: %v", lines, err)
			}
			lines = append(lines, line)
			if line == ": keep-alive\n" {
				close(seen)
				break
			}
		}
		rest, err := io.ReadAll(br)
		if err != nil {
			t.Fatal(err)
		}
		// The heartbeat stands between events, as an event of its own.
		if got := strings.Join(lines, "") + string(rest); !strings.HasSuffix(got, "\n\n: keep-alive\n\ndata: [DONE]\n\n") &&
			!strings.Contains(got, "\n\n: keep-alive\n\n: keep-alive\n\n") {
			t.Errorf("stream %q", got)
		}
	})
}

func TestServerDraining(t *testing.T) {
	drain := make(chan struct{})
	inFlight := make(chan struct{})
	finish := make(chan struct{})
	srv := serve(t, false, middleware.ServerConfig{Drain: drain, DrainRetryAfter: 2 * time.Second},
		sseHandler(func(w http.ResponseWriter, r *http.Request) {
			close(inFlight)
			<-finish
			io.WriteString(w, "data: [DONE]\n\n")
		}))
	stream, err := srv.Client().Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Body.Close()
	<-inFlight
	close(drain)
	resp, b, err := rawGet(t, srv, "/")
	if err != nil || resp.StatusCode != 503 || resp.Header.Get("Retry-After") != "2" || jsonError(t, b) != middleware.DrainMessage {
		t.Fatalf("while draining: %d %q %q %v", resp.StatusCode, resp.Header.Get("Retry-After"), b, err)
	}
	var se *streamguard.Error
	if !errors.As(streamguard.Check(resp), &se) || se.Reason != streamguard.ReasonUnavailable || !se.Retryable {
		t.Errorf("the draining 503 classifies as %v", se)
	}
	close(finish)
	if b, err := io.ReadAll(stream.Body); err != nil || !strings.HasSuffix(string(b), "data: [DONE]\n\n") {
		t.Fatalf("the stream in flight: %q %v", b, err)
	}
}

// endedSpans waits (five seconds at most) until rec holds n ended spans,
// and returns them; fewer or more fail the test.
func endedSpans(t *testing.T, rec *tracetest.SpanRecorder, n int) []sdktrace.ReadOnlySpan {
	t.Helper()
	for range 500 {
		if len(rec.Ended()) >= n {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	spans := rec.Ended()
	if len(spans) != n {
		t.Fatalf("%d spans ended, want %d", len(spans), n)
	}
	return spans
}

func TestServerClientGoesAway(t *testing.T) {
	protocols(t, func(t *testing.T, h2 bool) {
		rec := tracetest.NewSpanRecorder()
		tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
		defer tp.Shutdown(context.Background())
		causes := make(chan error, 1)
		srv := serve(t, h2, middleware.ServerConfig{Tracing: tracingConfig(tp)}, sseHandler(func(w http.ResponseWriter, r *http.Request) {
			for i := 0; ; i++ {
				if _, err := io.WriteString(w, "data: {\"id\":\"x\"}\n\n"); err != nil {
					break
				}
				if err := http.NewResponseController(w).Flush(); err != nil {
					break
				}
				select {
				case <-r.Context().Done():
				case <-time.After(time.Millisecond):
					continue
				}
				break
			}
			<-r.Context().Done()
			causes <- context.Cause(r.Context())
		}))
		ctx, cancel := context.WithCancel(context.Background())
		req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL, nil)
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		bufio.NewReader(resp.Body).ReadString('\n')
		cancel()
		resp.Body.Close()
		if c := <-causes; c == nil || errors.Is(c, streamguard.ErrBudgetExceeded) {
			t.Fatalf("handler's context cause %v", c)
		}
		// The span ends once the handler has returned, a moment after it
		// sent its cause (srv.Close would not wait for it on HTTP/2).
		spans := endedSpans(t, rec, 1)
		attrs := map[string]string{}
		for _, kv := range spans[0].Attributes() {
			attrs[string(kv.Key)] = kv.Value.String()
		}
		if attrs["streamguard.error.source"] != "client" || attrs["streamguard.error.reason"] != "canceled" || attrs["error.type"] != "" {
			t.Errorf("span attributes %v", attrs)
		}
	})
}

func TestWriteError(t *testing.T) {
	protocols(t, func(t *testing.T, h2 bool) {
		upstream := &streamguard.Error{StatusCode: 503, Source: streamguard.SourcePlatform, Reason: streamguard.ReasonUnavailable, Message: "draining"}
		mux := http.NewServeMux()
		mux.HandleFunc("/before", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("X-Custom", "kept")
			middleware.WriteError(w, r, upstream)
		})
		mux.HandleFunc("/plain", func(w http.ResponseWriter, r *http.Request) {
			middleware.WriteError(w, r, errors.New("something\nbroke"))
		})
		mux.Handle("/sse", sseHandler(func(w http.ResponseWriter, r *http.Request) {
			middleware.WriteError(w, r, &streamguard.Error{StatusCode: 200, Source: streamguard.SourceNetwork,
				Reason: streamguard.ReasonTruncated, Message: "upstream cut\n\nevent: injected"})
			if _, err := io.WriteString(w, "data: more\n\n"); err == nil {
				t.Error("a write after WriteError succeeded")
			}
		}))
		mux.HandleFunc("/raw", func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "partial")
			http.NewResponseController(w).Flush()
			middleware.WriteError(w, r, upstream)
		})
		srv := serve(t, h2, middleware.ServerConfig{}, mux)

		resp, b, err := rawGet(t, srv, "/before")
		if err != nil || resp.StatusCode != 503 || jsonError(t, b) != "draining" || resp.Header.Get("Content-Type") != "application/json" {
			t.Errorf("before: %d %q %v", resp.StatusCode, b, err)
		}
		resp, b, _ = rawGet(t, srv, "/plain")
		if resp.StatusCode != 500 || jsonError(t, b) != "something broke" {
			t.Errorf("plain: %d %q", resp.StatusCode, b)
		}
		_, b, err = rawGet(t, srv, "/sse")
		if err != nil || strings.Count(string(b), "\nevent: ") != 1 || !strings.Contains(string(b), `"reason":"truncated"`) {
			t.Errorf("sse: %q %v", b, err)
		}
		_, b, err = rawGet(t, srv, "/raw")
		if err == nil || string(b) != "partial" {
			t.Errorf("raw: %q %v; want a truncated body", b, err)
		}
	})
}

// http.ResponseController reaches through the handler's writer.
func TestServerWriterKeepsInterfaces(t *testing.T) {
	protocols(t, func(t *testing.T, h2 bool) {
		results := make(chan []error, 1)
		srv := serve(t, h2, middleware.ServerConfig{}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			rc := http.NewResponseController(w)
			errs := []error{
				rc.SetWriteDeadline(time.Now().Add(time.Minute)),
				rc.SetReadDeadline(time.Now().Add(time.Minute)),
				rc.Flush(),
			}
			if !h2 {
				errs = append(errs, rc.EnableFullDuplex())
			}
			results <- errs
		}))
		rawGet(t, srv, "/")
		for i, err := range <-results {
			if err != nil {
				t.Errorf("call %d: %v", i, err)
			}
		}
	})
	t.Run("hijack", func(t *testing.T) {
		srv := serve(t, false, middleware.ServerConfig{}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			conn, buf, err := http.NewResponseController(w).Hijack()
			if err != nil {
				t.Error(err)
				return
			}
			defer conn.Close()
			buf.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 8\r\nConnection: close\r\n\r\nhijacked")
			buf.Flush()
		}))
		_, b, err := rawGet(t, srv, "/")
		if err != nil || string(b) != "hijacked" {
			t.Fatalf("%q %v", b, err)
		}
	})
}

func tracingConfig(tp *sdktrace.TracerProvider) tracing.Config {
	return tracing.Config{TracerProvider: tp}
}

// quietLog silences net/http's own log of a server under test.
func quietLog() *log.Logger { return log.New(io.Discard, "", 0) }

// The ServeMux's route reaches the span through the handler's own copy of
// the request.
func TestServerSpanRoute(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	defer tp.Shutdown(context.Background())
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/{model}/predict", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "{}") })
	srv := serve(t, false, middleware.ServerConfig{Tracing: tracingConfig(tp)}, mux)
	resp, err := srv.Client().Post(srv.URL+"/v1/llama/predict", "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	srv.Close()
	spans := rec.Ended()
	if len(spans) != 1 || spans[0].Name() != "POST /v1/{model}/predict" {
		t.Fatalf("spans %v", spans)
	}
}

// Trailers set after the body reach the client through the handler's writer.
func TestServerTrailers(t *testing.T) {
	protocols(t, func(t *testing.T, h2 bool) {
		srv := serve(t, h2, middleware.ServerConfig{}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Trailer", "X-Tokens")
			w.WriteHeader(200)
			io.WriteString(w, "body")
			w.Header().Set("X-Tokens", "42")
		}))
		resp, b, err := rawGet(t, srv, "/")
		if err != nil || string(b) != "body" || resp.Trailer.Get("X-Tokens") != "42" {
			t.Fatalf("%q %v, trailer %q", b, err, resp.Trailer.Get("X-Tokens"))
		}
	})
}
