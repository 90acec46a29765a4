package tracing_test

import (
	"context"
	"errors"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/streamguard/streamguard"
	"github.com/streamguard/streamguard/tracing"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// TestServerSpan: a SERVER span with the semconv attributes, the route from
// the ServeMux pattern, and the caller's trace context as its parent.
func TestServerSpan(t *testing.T) {
	for _, p := range protocols {
		t.Run(p.name, func(t *testing.T) {
			f := newFixture(t)
			mux := http.NewServeMux()
			mux.HandleFunc("POST /v1/models/{model}/predict", func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				io.WriteString(w, `{"model":"`+r.PathValue("model")+`"}`)
			})
			srv := quietServer(t, tracing.NewHandler(mux, f.cfg), p.tls)

			caller := trace.NewSpanContext(trace.SpanContextConfig{
				TraceID:    trace.TraceID{0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36},
				SpanID:     trace.SpanID{0, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7},
				TraceFlags: trace.FlagsSampled,
				Remote:     true,
			})
			req, _ := http.NewRequest("POST", srv.URL+"/v1/models/llama/predict?stream=true", strings.NewReader(`{}`))
			req.Header.Set("User-Agent", "streamguard-test/1")
			propagation.TraceContext{}.Inject(trace.ContextWithRemoteSpanContext(context.Background(), caller), propagation.HeaderCarrier(req.Header))
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()

			s := f.waitSpan(t)
			if s.SpanKind() != trace.SpanKindServer || s.Name() != "POST /v1/models/{model}/predict" {
				t.Errorf("span %q kind %v", s.Name(), s.SpanKind())
			}
			if s.Parent().SpanID() != caller.SpanID() || s.SpanContext().TraceID() != caller.TraceID() || !s.Parent().IsRemote() {
				t.Errorf("parent %v, want the caller's %v", s.Parent(), caller)
			}
			version, scheme := "1.1", "http"
			if p.tls {
				version, scheme = "2", "https"
			}
			want(t, s, map[string]string{
				string(semconv.HTTPRequestMethodKey):      "POST",
				string(semconv.HTTPRouteKey):              "/v1/models/{model}/predict",
				string(semconv.URLPathKey):                "/v1/models/llama/predict",
				string(semconv.URLQueryKey):               "stream=REDACTED",
				string(semconv.URLSchemeKey):              scheme,
				string(semconv.ServerAddressKey):          "127.0.0.1",
				string(semconv.ClientAddressKey):          "127.0.0.1",
				string(semconv.UserAgentOriginalKey):      "streamguard-test/1",
				string(semconv.NetworkProtocolVersionKey): version,
				string(semconv.HTTPResponseStatusCodeKey): "200",
				tracing.AttrStreamVerdict:                 tracing.VerdictComplete,
				tracing.AttrStreamBytes:                   strconv.Itoa(len(body)),
				tracing.AttrErrorSource:                   "",
				string(semconv.ErrorTypeKey):              "",
			})
			wantStatus(t, s, codes.Unset)
		})
	}
}

// TestServerRouteOutside: NewHandler mounted on a ServeMux sees the route
// the mux matched before it started the span.
func TestServerRouteOutside(t *testing.T) {
	f := newFixture(t)
	mux := http.NewServeMux()
	mux.Handle("GET /v1/models/{model}", tracing.NewHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.PathValue("model"))
	}), f.cfg))
	srv := quietServer(t, mux, false)
	resp, err := srv.Client().Get(srv.URL + "/v1/models/llama")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	s := f.waitSpan(t)
	if s.Name() != "GET /v1/models/{model}" {
		t.Errorf("span %q", s.Name())
	}
	want(t, s, map[string]string{string(semconv.HTTPRouteKey): "/v1/models/{model}"})
}

// TestServerPanic: a panic is recorded on the span (source model, reason
// model_error, status Error, an exception event with the stack) and then
// continues; a panic after the 200 keeps the 200.
func TestServerPanic(t *testing.T) {
	cases := []struct {
		name      string
		before    bool // write and flush a 200 and an event first
		value     any
		status    string
		reason    string
		exception bool
	}{
		{"before the header", false, "boom", "", "model_error", true},
		{"after the 200", true, errors.New("boom"), "200", "model_error", true},
		{"abort after the 200", true, http.ErrAbortHandler, "200", "truncated", false},
	}
	for _, p := range protocols {
		for _, c := range cases {
			t.Run(p.name+" "+c.name, func(t *testing.T) {
				f := newFixture(t)
				srv := quietServer(t, tracing.NewHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					if c.before {
						w.Header().Set("Content-Type", "text/event-stream")
						io.WriteString(w, "data: first\n\n")
						http.NewResponseController(w).Flush()
					}
					panic(c.value)
				}), f.cfg), p.tls)
				// POST without a body: not replayable, so the transport does
				// not retry it on the closed connection.
				resp, err := srv.Client().Post(srv.URL+"/predict", "", nil)
				if err == nil {
					_, err = io.ReadAll(resp.Body)
					resp.Body.Close()
				}
				if err == nil {
					t.Error("the client saw a clean response: the panic did not continue")
				}
				s := f.waitSpan(t)
				want(t, s, map[string]string{
					string(semconv.HTTPResponseStatusCodeKey): c.status,
					string(semconv.ErrorTypeKey):              c.reason,
					tracing.AttrErrorSource:                   "model",
					tracing.AttrErrorReason:                   c.reason,
				})
				wantStatus(t, s, codes.Error)
				var stack string
				for _, e := range s.Events() {
					if e.Name == "exception" {
						for _, kv := range e.Attributes {
							if kv.Key == "exception.stacktrace" {
								stack = kv.Value.AsString()
							}
						}
					}
				}
				if c.exception != strings.Contains(stack, "handler_test.go") {
					t.Errorf("exception event with the panic's stack: got %v, want %v", stack != "", c.exception)
				}
			})
		}
	}
}

// TestServerPanicContinues: the very value that was recovered is panicked
// again, for net/http or an outer recoverer.
func TestServerPanicContinues(t *testing.T) {
	f := newFixture(t)
	value := errors.New("model crashed")
	h := tracing.NewHandler(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic(value) }), f.cfg)
	got := func() (p any) {
		defer func() { p = recover() }()
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil))
		return nil
	}()
	if got != value {
		t.Fatalf("recovered %v, want the handler's own panic value", got)
	}
	want(t, f.onlySpan(t), map[string]string{tracing.AttrErrorReason: "model_error"})
}

// TestServerClientDisconnect: a client that goes away mid-stream is source
// client, reason canceled, not a server error; the 200 stays; the handler's
// FlushError returns the real error of the connection through the wrapper.
func TestServerClientDisconnect(t *testing.T) {
	for _, p := range protocols {
		t.Run(p.name, func(t *testing.T) {
			f := newFixture(t)
			flushErr := make(chan error, 1)
			srv := quietServer(t, tracing.NewHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/event-stream")
				rc := http.NewResponseController(w)
				io.WriteString(w, "data: first\n\n")
				rc.Flush()
				<-r.Context().Done() // the client left
				var err error
				for i := 0; i < 10000 && err == nil; i++ {
					if _, err = io.WriteString(w, "data: more\n\n"); err == nil {
						err = rc.Flush()
					}
				}
				flushErr <- err
			}), f.cfg), p.tls)

			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/stream", nil)
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := resp.Body.Read(make([]byte, 8)); err != nil {
				t.Fatal(err)
			}
			cancel()
			resp.Body.Close()
			select {
			case err := <-flushErr:
				if err == nil || errors.Is(err, http.ErrNotSupported) {
					t.Errorf("the handler's write or flush after the client left returned %v, want the connection's error", err)
				}
			case <-time.After(waitTimeout):
				t.Fatal("the handler never saw the client leave")
			}
			s := f.waitSpan(t)
			want(t, s, map[string]string{
				string(semconv.HTTPResponseStatusCodeKey): "200",
				tracing.AttrErrorSource:                   "client",
				tracing.AttrErrorReason:                   "canceled",
				tracing.AttrStreamVerdict:                 "canceled",
				string(semconv.ErrorTypeKey):              "",
			})
			wantStatus(t, s, codes.Unset)
		})
	}
}

type cancelKey struct{}

// TestServerBudget: a request whose budget expired (the context's cause is
// streamguard.ErrBudgetExceeded) is the platform's timeout, an error, even
// after its 200.
func TestServerBudget(t *testing.T) {
	f := newFixture(t)
	traced := tracing.NewHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "data: first\n\n")
		r.Context().Value(cancelKey{}).(context.CancelCauseFunc)(streamguard.ErrBudgetExceeded)
	}), f.cfg)
	budget := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithCancelCause(r.Context())
		defer cancel(nil)
		traced.ServeHTTP(w, r.WithContext(context.WithValue(ctx, cancelKey{}, cancel)))
	})
	srv := quietServer(t, budget, false)
	resp, err := srv.Client().Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	s := f.waitSpan(t)
	want(t, s, map[string]string{
		string(semconv.HTTPResponseStatusCodeKey): "200",
		string(semconv.ErrorTypeKey):              "timeout",
		tracing.AttrErrorSource:                   "platform",
		tracing.AttrErrorReason:                   "timeout",
	})
	wantStatus(t, s, codes.Error)
}

// TestServerStatus: a 5xx the handler writes is classified by its status and
// is an error; a 4xx is attributed but, for a server, not an error.
func TestServerStatus(t *testing.T) {
	cases := []struct {
		status    int
		header    string // X-Baseten-Error-Source, when set
		source    string
		reason    string
		errorType string
		code      codes.Code
	}{
		{200, "", "", "", "", codes.Unset},
		{404, "", "request", "not_found", "", codes.Unset},
		{429, "", "platform", "rate_limited", "", codes.Unset},
		{500, "", "model", "model_error", "model_error", codes.Error},
		{502, "", "platform", "unreachable", "unreachable", codes.Error},
		{502, "model", "model", "model_error", "model_error", codes.Error},
		{503, "", "platform", "unavailable", "unavailable", codes.Error},
		{504, "", "platform", "timeout", "timeout", codes.Error},
	}
	f := newFixture(t)
	srv := quietServer(t, tracing.NewHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if h := r.URL.Query().Get("src"); h != "" {
			w.Header().Set("X-Baseten-Error-Source", h)
		}
		status, _ := strconv.Atoi(r.URL.Query().Get("status"))
		w.WriteHeader(status)
	}), f.cfg), false)
	for _, c := range cases {
		t.Run(strconv.Itoa(c.status)+c.header, func(t *testing.T) {
			resp, err := srv.Client().Get(srv.URL + "/?status=" + strconv.Itoa(c.status) + "&src=" + c.header)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			s := f.waitSpan(t)
			want(t, s, map[string]string{
				string(semconv.HTTPResponseStatusCodeKey): strconv.Itoa(c.status),
				tracing.AttrErrorSource:                   c.source,
				tracing.AttrErrorReason:                   c.reason,
				string(semconv.ErrorTypeKey):              c.errorType,
			})
			wantStatus(t, s, c.code)
		})
	}
}

// TestServerAnnotate: a handler that classifies its own failure with
// Annotate keeps that classification, under the server's rules (a 4xx is
// not an error of the span); a panic still overrides it.
func TestServerAnnotate(t *testing.T) {
	cases := []struct {
		name      string
		err       *streamguard.Error
		status    int
		panics    bool
		source    string
		reason    string
		errorType string
		code      codes.Code
	}{
		{"502 from a failed dial", &streamguard.Error{StatusCode: 502, Source: "network", Reason: "connection", Message: "dial upstream: connection refused"},
			502, false, "network", "connection", "connection", codes.Error},
		{"413 is the request's", &streamguard.Error{StatusCode: 413, Source: "request", Reason: "payload_too_large"},
			413, false, "request", "payload_too_large", "", codes.Unset},
		{"after the 200", &streamguard.Error{Source: "platform", Reason: "timeout"},
			200, false, "platform", "timeout", "timeout", codes.Error},
		{"a panic overrides", &streamguard.Error{StatusCode: 502, Source: "network", Reason: "connection"},
			502, true, "model", "model_error", "model_error", codes.Error},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t)
			srv := quietServer(t, tracing.NewHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				tracing.Annotate(trace.SpanFromContext(r.Context()), c.err)
				w.WriteHeader(c.status)
				if c.panics {
					panic("after annotating")
				}
			}), f.cfg), false)
			if resp, err := srv.Client().Post(srv.URL, "", nil); err == nil {
				resp.Body.Close()
			}
			s := f.waitSpan(t)
			want(t, s, map[string]string{
				tracing.AttrErrorSource:                   c.source,
				tracing.AttrErrorReason:                   c.reason,
				tracing.AttrStreamVerdict:                 c.reason,
				string(semconv.ErrorTypeKey):              c.errorType,
				string(semconv.HTTPResponseStatusCodeKey): strconv.Itoa(c.status),
			})
			wantStatus(t, s, c.code)
		})
	}
}

// TestServerResponseController: http.ResponseController works through the
// writer NewHandler gives the handler: Flush, deadlines and full duplex on
// both protocols, Hijack on HTTP/1 (and an error wrapping ErrNotSupported on
// HTTP/2, as without the wrapper).
func TestServerResponseController(t *testing.T) {
	for _, p := range protocols {
		t.Run(p.name, func(t *testing.T) {
			f := newFixture(t)
			results := make(chan map[string]error, 1)
			srv := quietServer(t, tracing.NewHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				rc := http.NewResponseController(w)
				res := map[string]error{
					"SetReadDeadline":  rc.SetReadDeadline(time.Now().Add(time.Minute)),
					"SetWriteDeadline": rc.SetWriteDeadline(time.Now().Add(time.Minute)),
					"EnableFullDuplex": rc.EnableFullDuplex(),
				}
				if r.URL.Path == "/hijack" {
					conn, buf, err := rc.Hijack()
					res["Hijack"] = err
					if err == nil {
						buf.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 8\r\nConnection: close\r\n\r\nhijacked")
						buf.Flush()
						conn.Close()
					}
					results <- res
					return
				}
				io.WriteString(w, "data: x\n\n")
				res["Flush"] = rc.Flush()
				results <- res
			}), f.cfg), p.tls)

			for _, path := range []string{"/flush", "/hijack"} {
				resp, err := srv.Client().Get(srv.URL + path)
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				res := <-results
				for name, err := range res {
					hijackH2 := name == "Hijack" && p.tls
					switch {
					case hijackH2 && !errors.Is(err, http.ErrNotSupported):
						t.Errorf("%s over HTTP/2: %v, want ErrNotSupported", name, err)
					case !hijackH2 && err != nil:
						t.Errorf("%s %s: %v", path, name, err)
					}
				}
				if path == "/hijack" && !p.tls && string(body) != "hijacked" {
					t.Errorf("hijacked body %q", body)
				}
				s := f.waitSpan(t)
				want(t, s, map[string]string{tracing.AttrErrorSource: "", string(semconv.ErrorTypeKey): ""})
			}
		})
	}
}

// TestServerRedaction: no credential header or query value of the request
// reaches the span.
func TestServerRedaction(t *testing.T) {
	f := newFixture(t)
	srv := quietServer(t, tracing.NewHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		panic("invalid key " + r.Header.Get("Api-Key") + " for " + r.URL.RawQuery)
	}), f.cfg), false)
	req, _ := http.NewRequest("POST", srv.URL+"/predict?token=tok-secret-123&sig=sig-secret-456", nil)
	req.Header.Set("Authorization", "Api-Key sk-header-secret")
	req.Header.Set("Api-Key", "apikey-secret-9")
	req.Header.Set("Cookie", "session=cookie-secret-7")
	if resp, err := srv.Client().Do(req); err == nil {
		resp.Body.Close()
	}
	s := f.waitSpan(t)
	want(t, s, map[string]string{string(semconv.URLQueryKey): "token=REDACTED&sig=REDACTED"})
	text := everything(s)
	for _, secret := range []string{"tok-secret-123", "sig-secret-456", "sk-header-secret", "apikey-secret-9", "cookie-secret-7"} {
		if strings.Contains(text, secret) {
			t.Errorf("span carries %q:\n%s", secret, text)
		}
	}
	if !strings.Contains(s.Status().Description, "panic: invalid key REDACTED") {
		t.Errorf("description %q", s.Status().Description)
	}
}

// TestServerNotRecording: with nothing to record, the handler gets the
// original ResponseWriter.
func TestServerNotRecording(t *testing.T) {
	rec := httptest.NewRecorder()
	var got http.ResponseWriter
	h := tracing.NewHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { got = w }), tracing.Config{TracerProvider: noop.NewTracerProvider()})
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	if got != rec {
		t.Errorf("handler got %T, want the original writer", got)
	}
}
