package tracing_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"unicode/utf8"

	semconvgenai "go.opentelemetry.io/otel/semconv/v1.41.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/streamguard/streamguard/gatewaytest"
	"github.com/streamguard/streamguard/tracing"
)

// spanText sends req (its host replaced by a loopback server's running h)
// through NewTransport and returns everything its span recorded.
func spanText(t *testing.T, h http.HandlerFunc, req *http.Request) string {
	t.Helper()
	f := newFixture(t)
	srv := httptest.NewServer(h)
	defer srv.Close()
	req.URL.Host, req.Host = strings.TrimPrefix(srv.URL, "http://"), ""
	resp, err := (&http.Client{Transport: tracing.NewTransport(srv.Client().Transport, f.cfg)}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return everything(f.waitSpan(t))
}

// TestSpanEchoes: a key the server echoes back is on no span, wherever the
// request carried it and wherever the server put it.
func TestSpanEchoes(t *testing.T) {
	const jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln"
	cases := []struct {
		name, url, header, value, secret string
		echo                             func(w http.ResponseWriter, r *http.Request)
	}{
		{name: "request id header on a 200", url: "http://h/v1", header: "Api-Key", value: "bt-live-0123456789abcdef",
			echo: func(w http.ResponseWriter, r *http.Request) { w.Header().Set("X-Request-Id", r.Header.Get("Api-Key")) }},
		{name: "request id header on a 401", url: "http://h/v1", header: "Api-Key", value: "bt-live-0123456789abcdef",
			echo: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("X-Request-Id", r.Header.Get("Api-Key"))
				w.WriteHeader(401)
			}},
		{name: "user name of the URL", url: "http://tok0123456789abcdef@h/v1", secret: "tok0123456789abcdef",
			echo: func(w http.ResponseWriter, r *http.Request) {
				u, _, _ := r.BasicAuth()
				w.WriteHeader(401)
				fmt.Fprintf(w, `{"error":"invalid key %s"}`, u)
			}},
		{name: "a *-Key header", url: "http://h/v1", header: "Ocp-Apim-Subscription-Key", value: "0123456789abcdef0123",
			echo: func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(401)
				fmt.Fprintf(w, `{"error":"invalid subscription key %s"}`, r.Header.Get("Ocp-Apim-Subscription-Key"))
			}},
		{name: "a long query value", url: "http://h/v1?jwt=" + jwt, secret: jwt,
			echo: func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(401)
				fmt.Fprintf(w, `{"error":"invalid jwt %s"}`, r.URL.Query().Get("jwt"))
			}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req, _ := http.NewRequest("GET", c.url, nil)
			secret := c.secret
			if c.header != "" {
				req.Header.Set(c.header, c.value)
				secret = c.value
			}
			if text := spanText(t, c.echo, req); strings.Contains(text, secret) {
				t.Errorf("the span carries %q:\n%s", secret, text)
			}
		})
	}
}

// TestServerAnnotateScrubbed: Annotate on NewHandler's span scrubs the
// incoming request's secrets from what it records.
func TestServerAnnotateScrubbed(t *testing.T) {
	f := newFixture(t)
	srv := quietServer(t, tracing.NewHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tracing.Annotate(trace.SpanFromContext(r.Context()), fmt.Errorf("upstream rejected key %s", r.Header.Get("Api-Key")))
		w.WriteHeader(502)
	}), f.cfg), false)
	req, _ := http.NewRequest("POST", srv.URL, nil)
	req.Header.Set("Api-Key", "bt-live-0123456789abcdef")
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if text := everything(f.waitSpan(t)); strings.Contains(text, "bt-live-0123456789abcdef") {
		t.Errorf("the span carries the key:\n%s", text)
	}
}

// TestRequestModelCutValid: a model name over the cap is cut at the start of
// a character.
func TestRequestModelCutValid(t *testing.T) {
	f := newFixture(t)
	s := genaiCall(t, gatewaytest.ChatStreamWithUsage(1), f.cfg, f, `{"model":"m`+strings.Repeat("é", 200)+`"}`)
	if v := attrs(s)[string(semconvgenai.GenAIRequestModelKey)].AsString(); !utf8.ValidString(v) || len(v) < 250 {
		t.Errorf("gen_ai.request.model %d bytes, valid UTF-8 %v", len(v), utf8.ValidString(v))
	}
}
