package middleware_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/streamguard/streamguard"
	"github.com/streamguard/streamguard/middleware"
)

// tracedConfig is fast retries with the real SDK's providers, in memory.
func tracedConfig(t *testing.T) (middleware.Config, *tracetest.SpanRecorder, *sdkmetric.ManualReader) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	rd := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(rd))
	t.Cleanup(func() { tp.Shutdown(context.Background()); mp.Shutdown(context.Background()) })
	cfg := middleware.Config{Retry: fast()}
	cfg.Tracing.TracerProvider, cfg.Tracing.MeterProvider = tp, mp
	return cfg, rec, rd
}

// unanswered is a handler that never answers: its request ends when the
// client cancels it, and its connection is cut. (A response written once
// the request's context ends could race the cancellation: net/http's
// transport returns a response that comes in before it closed the
// connection, and the test would see a 200 for a canceled request.)
func unanswered(_ http.ResponseWriter, r *http.Request) {
	<-r.Context().Done()
	panic(http.ErrAbortHandler)
}

// spanAttrs returns s's attributes as strings, by key.
func spanAttrs(s sdktrace.ReadOnlySpan) map[attribute.Key]string {
	a := map[attribute.Key]string{}
	for _, kv := range s.Attributes() {
		a[kv.Key] = kv.Value.String()
	}
	return a
}

// failureCounts returns streamguard.client.failures as "source/reason" to
// its count.
func failureCounts(t *testing.T, rd *sdkmetric.ManualReader) map[string]int64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := rd.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	out := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != "streamguard.client.failures" {
				continue
			}
			for _, dp := range m.Data.(metricdata.Sum[int64]).DataPoints {
				s, _ := dp.Attributes.Value(attribute.Key("streamguard.error.source"))
				r, _ := dp.Attributes.Value(attribute.Key("streamguard.error.reason"))
				out[s.String()+"/"+r.String()] += dp.Value
			}
		}
	}
	return out
}

// TestHeaderTimeoutTraced: an attempt the retry layer's header timeout
// abandons is the platform's timeout on its span and in the failures
// metric, as on the error the caller gets, not the caller's cancellation.
func TestHeaderTimeoutTraced(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
			panic(http.ErrAbortHandler) // see unanswered
		}
	}))
	defer srv.Close()
	defer close(release)
	cfg, rec, rd := tracedConfig(t)
	cfg.Retry.MaxAttempts = 2
	cfg.Retry.HeaderTimeout = 100 * time.Millisecond
	resp, err := clientFor(t, srv, cfg).Get(srv.URL + "/v1/x")
	if err == nil {
		resp.Body.Close()
		t.Fatal("no error")
	}
	var se *streamguard.Error
	if !errors.As(err, &se) || se.Source != streamguard.SourcePlatform || se.Reason != streamguard.ReasonTimeout {
		t.Fatalf("error %v, want the platform's timeout", err)
	}
	spans := rec.Ended()
	if len(spans) != 2 {
		t.Fatalf("%d spans, want one per attempt", len(spans))
	}
	for _, s := range spans {
		a := spanAttrs(s)
		if s.Status().Code != codes.Error || a["error.type"] != "timeout" || a["streamguard.error.source"] != "platform" {
			t.Errorf("attempt span: status %v, error.type %q, source %q; want Error, timeout, platform",
				s.Status().Code, a["error.type"], a["streamguard.error.source"])
		}
	}
	if got := failureCounts(t, rd); got["platform/timeout"] != 2 || len(got) != 1 {
		t.Errorf("failures %v, want platform/timeout=2", got)
	}
}

// TestSlowErrorBodyTraced: with tracing on, an error status whose body
// comes slower than the header timeout is still the answer (the span reads
// the body's prefix before the retry layer sees the response), as it is
// with tracing off.
func TestSlowErrorBodyTraced(t *testing.T) {
	for _, traced := range []bool{false, true} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusServiceUnavailable)
			w.(http.Flusher).Flush()
			select {
			case <-time.After(300 * time.Millisecond):
			case <-r.Context().Done():
			}
			io.WriteString(w, `{"error":{"message":"overloaded"}}`)
		}))
		cfg, _, _ := tracedConfig(t)
		if !traced {
			cfg.Tracing = middleware.Config{}.Tracing
			cfg.Tracing.NoMetrics = true
		}
		cfg.Retry.MaxAttempts = 1
		cfg.Retry.HeaderTimeout = 100 * time.Millisecond
		resp, err := clientFor(t, srv, cfg).Get(srv.URL + "/v1/x")
		if err != nil {
			t.Errorf("traced=%v: %v, want the 503", traced, err)
		} else {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusServiceUnavailable {
				t.Errorf("traced=%v: %d %q, want the 503", traced, resp.StatusCode, b)
			}
		}
		srv.Close()
	}
}

// TestCloseDuringBlockedReadTraced: the caller's Close while another
// goroutine is blocked reading the stream is the same verdict every time,
// closed, not a failure (it was the caller's canceled now and then, and
// counted in the failures metric).
func TestCloseDuringBlockedReadTraced(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"model\":\"m\",\"choices\":[]}\n\n")
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	}))
	defer srv.Close()
	cfg, rec, rd := tracedConfig(t)
	c := clientFor(t, srv, cfg)
	const n = 20
	for range n {
		resp, err := c.Post(srv.URL+"/v1/chat/completions", "application/json", strings.NewReader(`{"model":"m","stream":true}`))
		if err != nil {
			t.Fatal(err)
		}
		first, done := make(chan struct{}), make(chan struct{})
		go func() {
			defer close(done)
			b := make([]byte, 4096)
			resp.Body.Read(b)
			close(first)
			for range 100 {
				if _, err := resp.Body.Read(b); err != nil {
					return
				}
			}
		}()
		<-first
		time.Sleep(10 * time.Millisecond) // the reader blocked in Read, most of the time
		resp.Body.Close()
		<-done
	}
	verdicts := map[string]int{}
	for _, s := range rec.Ended() {
		verdicts[spanAttrs(s)["streamguard.stream.verdict"]]++
	}
	if verdicts["closed"] != n || len(verdicts) != 1 {
		t.Errorf("verdicts %v, want closed for all %d", verdicts, n)
	}
	if got := failureCounts(t, rd); len(got) != 0 {
		t.Errorf("failures %v, want none", got)
	}
}

// TestDialectWhenClosedAfterTerminal: a caller that stops at the terminal
// event and closes (as SDKs do at [DONE]) leaves the stream's dialect on
// its span, as one that reads to the end does.
func TestDialectWhenClosedAfterTerminal(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"model\":\"m\",\"choices\":[]}\n\ndata: [DONE]\n\n")
		w.(http.Flusher).Flush()
		<-r.Context().Done() // the body never ends
	}))
	defer srv.Close()
	cfg, rec, _ := tracedConfig(t)
	resp, err := clientFor(t, srv, cfg).Post(srv.URL+"/v1/chat/completions", "application/json", strings.NewReader(`{"model":"m","stream":true}`))
	if err != nil {
		t.Fatal(err)
	}
	var got []byte
	b := make([]byte, 4096)
	for i := 0; i < 100 && !strings.Contains(string(got), "[DONE]\n\n"); i++ {
		n, err := resp.Body.Read(b)
		got = append(got, b[:n]...)
		if err != nil {
			t.Fatalf("read: %v after %q", err, got)
		}
	}
	resp.Body.Close()
	spans := rec.Ended()
	if len(spans) != 1 {
		t.Fatalf("%d spans", len(spans))
	}
	a := spanAttrs(spans[0])
	if a["streamguard.stream.dialect"] != "openai" || a["streamguard.stream.verdict"] != "complete" {
		t.Errorf("dialect %q, verdict %q; want openai, complete", a["streamguard.stream.dialect"], a["streamguard.stream.verdict"])
	}
}

// TestSiblingCauseIsCancellation: a caller's context canceled with another
// request's failure as its cause (errgroup.WithContext does so) is this
// request's cancellation on its span, not that failure.
func TestSiblingCauseIsCancellation(t *testing.T) {
	for _, cause := range []error{
		&streamguard.Error{StatusCode: 429, Source: streamguard.SourcePlatform, Reason: streamguard.ReasonRateLimited, Message: "another request"},
		fmt.Errorf("the batch's own budget: %w", streamguard.ErrBudgetExceeded), // not the stack's budget
		errors.New("the user pressed stop"),
	} {
		for _, h2 := range []bool{false, true} { // HTTP/2's transport returns ctx.Err(), not the cause
			siblingCauseBeforeHeader(t, cause, h2)
		}
	}
}

func siblingCauseBeforeHeader(t *testing.T, cause error, h2 bool) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(unanswered))
	srv.EnableHTTP2 = h2
	srv.StartTLS()
	defer srv.Close()
	cfg, rec, rd := tracedConfig(t)
	ctx, cancel := context.WithCancelCause(context.Background())
	stop := time.AfterFunc(50*time.Millisecond, func() { cancel(cause) })
	defer stop.Stop()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/v1/x", nil)
	resp, err := clientFor(t, srv, cfg).Do(req)
	if err == nil {
		resp.Body.Close()
		t.Fatalf("HTTP/2 %v, cause %v: no error: %d %v", h2, cause, resp.StatusCode, resp.Header)
	}
	var se *streamguard.Error
	if !errors.As(err, &se) || se.Source != streamguard.SourceClient || se.Reason != streamguard.ReasonCanceled || se.Budget != 0 || !errors.Is(err, cause) {
		t.Errorf("HTTP/2 %v, cause %v: error %v (%+v), want the caller's cancellation, its cause in the chain", h2, cause, err, se)
	}
	for _, s := range rec.Ended() {
		for _, k := range []attribute.Key{"error.type", "streamguard.error.reason"} {
			if v, ok := spanAttrs(s)[k]; ok && v != "canceled" {
				t.Errorf("HTTP/2 %v, cause %v: span %s: %s = %s, want canceled", h2, cause, s.Name(), k, v)
			}
		}
	}
	if got := failureCounts(t, rd); len(got) != 1 || got["client/canceled"] != 1 {
		t.Errorf("HTTP/2 %v, cause %v: failures %v, want client/canceled", h2, cause, got)
	}
}

// TestSiblingCauseDuringStream: the errgroup case after the headers: a stream whose caller cancels
// its context with a sibling's failure (rate_limited) is this request's
// cancellation, on its span and for its caller, as before the headers.
func TestSiblingCauseDuringStream(t *testing.T) {
	for _, sibling := range []*streamguard.Error{
		{StatusCode: 429, Source: streamguard.SourcePlatform, Reason: streamguard.ReasonRateLimited, Message: "another request"},
		{Source: streamguard.SourcePlatform, Reason: streamguard.ReasonTimeout, Message: "request budget of 1s exceeded",
			Err: streamguard.ErrBudgetExceeded, Budget: time.Second}, // a sibling's budget: not this request's
	} {
		siblingCauseDuringStream(t, sibling)
	}
}

func siblingCauseDuringStream(t *testing.T, sibling *streamguard.Error) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "data: {\"choices\":[]}\n\n")
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	}))
	defer srv.Close()
	cfg, rec, rd := tracedConfig(t)
	ctx, cancel := context.WithCancelCause(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/v1/x", nil)
	resp, err := clientFor(t, srv, cfg).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	stop := time.AfterFunc(50*time.Millisecond, func() { cancel(sibling) })
	defer stop.Stop()
	_, err = io.ReadAll(resp.Body)
	resp.Body.Close()
	var se *streamguard.Error
	if !errors.As(err, &se) || se.Source != streamguard.SourceClient || se.Reason != streamguard.ReasonCanceled || !errors.Is(err, sibling) {
		t.Errorf("sibling %s: Read error %v, want the caller's cancellation, the cause in its chain", sibling.Reason, err)
	}
	for _, s := range rec.Ended() {
		for _, k := range []attribute.Key{"error.type", "streamguard.error.reason", "streamguard.stream.verdict"} {
			if spanAttrs(s)[k] == string(sibling.Reason) {
				t.Errorf("span %s: %s = %s, the sibling's failure", s.Name(), k, sibling.Reason)
			}
		}
	}
	if got := failureCounts(t, rd); got["platform/"+string(sibling.Reason)] != 0 {
		t.Errorf("failures %v: the sibling's counted as this request's", got)
	}
}

// TestOwnFailureAsCallerCancels: an attempt's own failure (its header
// timeout) that comes as the caller cancels with a cause of its own stays
// that failure, on the caller's error as on the span and in the metric.
func TestOwnFailureAsCallerCancels(t *testing.T) {
	protocols(t, func(t *testing.T, h2 bool) {
		release := make(chan struct{})
		defer close(release)
		srv := serve(t, h2, middleware.ServerConfig{}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-release:
			case <-r.Context().Done():
				panic(http.ErrAbortHandler) // see unanswered
			}
		}))
		ctx, cancel := context.WithCancelCause(context.Background())
		inner := srv.Client().Transport
		cfg, rec, rd := tracedConfig(t)
		cfg.Retry.MaxAttempts = 2
		cfg.Retry.HeaderTimeout = 100 * time.Millisecond
		cfg.Base = roundTripFunc(func(r *http.Request) (*http.Response, error) {
			resp, err := inner.RoundTrip(r)
			if err != nil {
				cancel(errors.New("user pressed stop")) // the caller cancels at that moment
			}
			return resp, err
		})
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/v1/x", nil)
		resp, err := clientFor(t, srv, cfg).Do(req)
		if err == nil {
			resp.Body.Close()
			t.Fatal("no error")
		}
		var se *streamguard.Error
		span := ""
		for _, s := range rec.Ended() {
			span += spanAttrs(s)["streamguard.error.source"]
		}
		if !errors.As(err, &se) || se.Source != streamguard.SourcePlatform || span != "platform" || failureCounts(t, rd)["platform/timeout"] != 1 {
			t.Errorf("caller's error %v; span source %q; failures %v: want the header timeout, the platform's, on all three", err, span, failureCounts(t, rd))
		}
	})
}
