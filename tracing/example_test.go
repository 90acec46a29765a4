package tracing_test

import (
	"context"
	"fmt"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/streamguard/streamguard"
	"github.com/streamguard/streamguard/gatewaytest"
	"github.com/streamguard/streamguard/tracing"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// printSpan prints a span's name, status and the named attributes, in order,
// with the loopback server's address replaced by "gateway".
func printSpan(s sdktrace.ReadOnlySpan, server string, keys ...string) {
	fmt.Printf("span %q status=%s\n", s.Name(), s.Status().Code)
	set := attribute.NewSet(s.Attributes()...)
	for _, k := range keys {
		if v, ok := set.Value(attribute.Key(k)); ok {
			text := v.String()
			if server != "" {
				text = strings.ReplaceAll(text, server, "gateway")
			}
			fmt.Printf("  %s=%s\n", k, text)
		}
	}
}

// A model's stream is cut after two events. The client span stays open
// while the body is read, and ends when the read fails, tagged with where
// the failure happened.
func ExampleNewTransport() {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	defer tp.Shutdown(context.Background())

	srv := gatewaytest.NewServer(gatewaytest.ChatStream(5))
	defer srv.Close()
	srv.Script(gatewaytest.Cut(2)) // the model crashes mid-stream

	client := &http.Client{Transport: tracing.NewTransport(srv.Client().Transport, tracing.Config{
		TracerProvider: tp,
		Propagators:    propagation.TraceContext{},
	})}
	resp, err := client.Get(srv.URL + "/v1/chat/completions?api_key=sk-secret")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("spans ended at header time:", len(rec.Ended()))
	_, err = io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Println("read:", err)

	printSpan(rec.Ended()[0], strings.TrimPrefix(srv.URL, "http://"), string(semconv.HTTPResponseStatusCodeKey), string(semconv.URLFullKey), string(semconv.ErrorTypeKey),
		tracing.AttrErrorSource, tracing.AttrErrorReason, tracing.AttrStreamVerdict)
	// Output:
	// spans ended at header time: 0
	// read: unexpected EOF
	// span "GET" status=Error
	//   http.response.status_code=200
	//   url.full=http://gateway/v1/chat/completions?api_key=REDACTED
	//   error.type=truncated
	//   streamguard.error.source=network
	//   streamguard.error.reason=truncated
	//   streamguard.stream.verdict=truncated
}

// A server span lasts the handler, is named after the ServeMux route, and
// records a client that went away as the client's doing, not an error.
func ExampleNewHandler() {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	defer tp.Shutdown(context.Background())

	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/chat/completions", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "data: {}\n\n")
		http.NewResponseController(w).Flush() // works through the span's writer
	})
	h := tracing.NewHandler(mux, tracing.Config{TracerProvider: tp})

	// The client leaves while the handler streams.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	req := httptest.NewRequestWithContext(ctx, "POST", "/v1/chat/completions", nil)
	h.ServeHTTP(httptest.NewRecorder(), req)

	printSpan(rec.Ended()[0], "", string(semconv.HTTPRouteKey), string(semconv.HTTPResponseStatusCodeKey), string(semconv.ErrorTypeKey),
		tracing.AttrErrorSource, tracing.AttrErrorReason)
	// Output:
	// span "POST /v1/chat/completions" status=Unset
	//   http.route=/v1/chat/completions
	//   http.response.status_code=200
	//   streamguard.error.source=client
	//   streamguard.error.reason=canceled
}

// Annotate tags a span this package did not start, such as otelhttp's
// server span or the caller's own, with a failure's source and reason.
func ExampleAnnotate() {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	defer tp.Shutdown(context.Background())

	ctx, span := tp.Tracer("app").Start(context.Background(), "summarize")
	err := error(&streamguard.Error{StatusCode: 503, Source: streamguard.SourcePlatform, Reason: streamguard.ReasonUnavailable})
	tracing.Annotate(trace.SpanFromContext(ctx), err)
	span.End()

	printSpan(rec.Ended()[0], "", string(semconv.ErrorTypeKey), tracing.AttrErrorSource, tracing.AttrErrorReason)
	// Output:
	// span "summarize" status=Error
	//   error.type=unavailable
	//   streamguard.error.source=platform
	//   streamguard.error.reason=unavailable
}
