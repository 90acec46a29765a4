package bench

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"testing"

	"github.com/hashicorp/go-retryablehttp"
	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/streamguard/streamguard/middleware"
	"github.com/streamguard/streamguard/tracing"
)

// serveC answers workload C: it reads the request and returns the small
// chat completion.
func serveC(w http.ResponseWriter, r *http.Request) {
	io.Copy(io.Discard, r.Body)
	w.Header().Set("Content-Type", "application/json")
	w.Write(replyC)
}

// stubC is a base transport that answers workload C from memory, so that a
// stack's own per-request cost is measured free of the loopback's noise.
func stubC() http.RoundTripper {
	return stubTransport(func(req *http.Request) (*http.Response, error) {
		if req.Body != nil {
			io.Copy(io.Discard, req.Body)
			req.Body.Close()
		}
		return &http.Response{
			Status: "200 OK", StatusCode: 200,
			Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
			Header:        http.Header{"Content-Type": {"application/json"}},
			Body:          io.NopCloser(bytes.NewReader(replyC)),
			ContentLength: int64(len(replyC)),
			Request:       req,
		}, nil
	})
}

// tracers are the two tracer settings each instrumented stack is measured
// with: a no-op provider (tracing compiled in, nothing recorded), and the
// SDK sampling every span into a no-op exporter with W3C propagation (the
// full cost of recording, without an exporter's I/O).
func tracers(b *testing.B) map[string]struct {
	tp   trace.TracerProvider
	prop propagation.TextMapPropagator
} {
	rec := sdktrace.NewTracerProvider(
		sdktrace.WithSampler(sdktrace.AlwaysSample()),
		sdktrace.WithSyncer(tracetest.NewNoopExporter()))
	b.Cleanup(func() { rec.Shutdown(context.Background()) })
	return map[string]struct {
		tp   trace.TracerProvider
		prop propagation.TextMapPropagator
	}{
		"noop": {noop.NewTracerProvider(), propagation.NewCompositeTextMapPropagator()},
		"rec":  {rec, propagation.TraceContext{}},
	}
}

// BenchmarkRequest sends workload C (a small JSON chat completion, not
// streamed) through each client stack a user could pick, against the raw
// transport in the same run: from a stub base transport (the stack's own
// cost per request) and over a loopback HTTP/1.1 server.
//
//	raw           http.Client over the base transport
//	stack-noop    middleware.NewClient, no-op tracer provider
//	stack-rec     middleware.NewClient, recording SDK tracer, W3C propagation
//	otelretry-*   go-retryablehttp's StandardClient over otelhttp.NewTransport
//	              (Logger nil), the same two tracer settings
//	openai-raw    openai-go's chat completion call (its own retry loop and
//	              JSON encoding and decoding) over the raw http.Client
//	openai-stack  the same call over middleware.NewClient (no-op tracer)
//
// Every stack sits on a base transport of the same kind: a clone of
// http.DefaultTransport (or the stub), so the differences are the layers.
//
//	cd bench && go test -run '^$' -bench Request -benchmem -count 6
func BenchmarkRequest(b *testing.B) {
	srv := startLoopback(b, "h1", http.HandlerFunc(serveC))
	tr := tracers(b)
	for _, src := range []string{"stub", "h1"} {
		base := func(b *testing.B) http.RoundTripper {
			if src == "stub" {
				return stubC()
			}
			return srv.rawTransport(b)
		}
		url := srv.srv.URL
		if src == "stub" {
			url = "http://stub.invalid"
		}
		run := func(name string, newClient func(b *testing.B) *http.Client) {
			b.Run("src="+src+"/via="+name, func(b *testing.B) {
				benchPost(b, newClient(b), url+"/v1/chat/completions")
			})
		}
		run("raw", func(b *testing.B) *http.Client { return &http.Client{Transport: base(b)} })
		for _, t := range []string{"noop", "rec"} {
			run("stack-"+t, func(b *testing.B) *http.Client {
				return middleware.NewClient(middleware.Config{
					Base:    base(b),
					Tracing: tracing.Config{TracerProvider: tr[t].tp, Propagators: tr[t].prop},
				})
			})
		}
		for _, t := range []string{"noop", "rec"} {
			run("otelretry-"+t, func(b *testing.B) *http.Client {
				rc := retryablehttp.NewClient()
				rc.Logger = nil // its default logs every request to stderr
				rc.HTTPClient = &http.Client{Transport: otelhttp.NewTransport(base(b),
					otelhttp.WithTracerProvider(tr[t].tp), otelhttp.WithPropagators(tr[t].prop))}
				return rc.StandardClient()
			})
		}
		for _, name := range []string{"openai-raw", "openai-stack"} {
			b.Run("src="+src+"/via="+name, func(b *testing.B) {
				hc := &http.Client{Transport: base(b)}
				if name == "openai-stack" {
					hc = middleware.NewClient(middleware.Config{
						Base:    base(b),
						Tracing: tracing.Config{TracerProvider: tr["noop"].tp, Propagators: tr["noop"].prop},
					})
				}
				benchOpenAI(b, hc, url+"/v1/")
			})
		}
	}
}

// benchPost posts workload C to url through client, reading each answer
// to its end.
func benchPost(b *testing.B, client *http.Client, url string) {
	buf := make([]byte, 512)
	b.SetBytes(int64(len(replyC)))
	b.ReportAllocs()
	for b.Loop() {
		req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(requestC))
		if err != nil {
			b.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		n, err := drain(resp.Body, buf)
		resp.Body.Close()
		if err != nil || n != int64(len(replyC)) || resp.StatusCode != http.StatusOK {
			b.Fatalf("status %d, read %d bytes, err %v", resp.StatusCode, n, err)
		}
	}
}

// benchOpenAI makes openai-go's chat completion call through hc against
// baseURL, which answers workload C.
func benchOpenAI(b *testing.B, hc *http.Client, baseURL string) {
	client := openai.NewClient(
		option.WithBaseURL(baseURL),
		option.WithHTTPClient(hc),
		option.WithAPIKey("sk-bench"),
	)
	params := openai.ChatCompletionNewParams{
		Model:     "m",
		Messages:  []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")},
		MaxTokens: openai.Int(16),
	}
	ctx := context.Background()
	b.SetBytes(int64(len(replyC)))
	b.ReportAllocs()
	for b.Loop() {
		c, err := client.Chat.Completions.New(ctx, params)
		if err != nil {
			b.Fatal(err)
		}
		if len(c.Choices) != 1 || c.Choices[0].Message.Content != "hello" {
			b.Fatalf("unexpected completion %+v", c)
		}
	}
}
