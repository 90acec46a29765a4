package tracing_test

import (
	"context"
	"errors"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/streamguard/streamguard"
	"github.com/streamguard/streamguard/gatewaytest"
	"github.com/streamguard/streamguard/internal/ctxkey"
	"github.com/streamguard/streamguard/internal/streamstat"
	"github.com/streamguard/streamguard/tracing"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

func tracedClient(srv *gatewaytest.Server, base http.RoundTripper, cfg tracing.Config) *http.Client {
	if base == nil {
		base = srv.Client().Transport
	}
	return &http.Client{Transport: tracing.NewTransport(base, cfg)}
}

// TestClientErrorStatus: every error status of the platform's guide
// (docs/platform.md) reaches the span
// with its source and reason, error.type is the reason, the status is
// Error, and the body is still whole for the caller.
func TestClientErrorStatus(t *testing.T) {
	cases := []struct {
		name    string
		fault   gatewaytest.Fault
		status  int
		source  streamguard.Source
		reason  streamguard.Reason
		message string
	}{
		{"400 bad request", gatewaytest.Status(400, `{"error":"bad input"}`), 400, "request", "bad_request", "bad input"},
		{"401 unauthorized", gatewaytest.Status(401, `{"error":"invalid key"}`), 401, "request", "unauthorized", "invalid key"},
		{"402 billing", gatewaytest.Status(402, `{"error":"no credits"}`), 402, "request", "billing", "no credits"},
		{"404 not found", gatewaytest.Status(404, `{"error":"no such model"}`), 404, "request", "not_found", "no such model"},
		{"413 too large", gatewaytest.PayloadTooLarge(), 413, "request", "payload_too_large", "payload size"},
		{"429 rate limited", gatewaytest.RateLimited(time.Second), 429, "platform", "rate_limited", gatewaytest.MessageRateLimited},
		{"500 model", gatewaytest.Status(500, `{"error":"CUDA out of memory"}`), 500, "model", "model_error", "CUDA out of memory"},
		{"502 unreachable", gatewaytest.Unreachable(), 502, "platform", "unreachable", gatewaytest.MessageUnreachable},
		{"502 proxy page", gatewaytest.Status(502, "<html><title>502 Bad Gateway</title></html>"), 502, "platform", "unreachable", "502 Bad Gateway"},
		{"503 draining", gatewaytest.Draining(0), 503, "platform", "unavailable", gatewaytest.MessageDraining},
		{"504 timeout", gatewaytest.GatewayTimeout(time.Millisecond), 504, "platform", "timeout", gatewaytest.MessageTimeout},
	}
	for _, p := range protocols {
		t.Run(p.name, func(t *testing.T) {
			srv := newGateway(p.tls, gatewaytest.ChatStream(3))
			defer srv.Close()
			for _, c := range cases {
				t.Run(c.name, func(t *testing.T) {
					f := newFixture(t)
					srv.Script(c.fault)
					resp, err := tracedClient(srv, nil, f.cfg).Get(srv.URL + "/v1/chat/completions")
					if err != nil {
						t.Fatal(err)
					}
					if n := len(f.rec.Ended()); n != 0 {
						t.Fatalf("%d spans ended before the body was read", n)
					}
					body, err := io.ReadAll(resp.Body)
					resp.Body.Close()
					if err != nil || !strings.Contains(string(body), c.message) {
						t.Fatalf("body %q, %v: the error body must stay readable", body, err)
					}
					s := f.onlySpan(t)
					if s.SpanKind() != trace.SpanKindClient || s.Name() != "GET" {
						t.Errorf("span %q kind %v", s.Name(), s.SpanKind())
					}
					want(t, s, map[string]string{
						string(semconv.HTTPResponseStatusCodeKey): strconv.Itoa(c.status),
						string(semconv.ErrorTypeKey):              string(c.reason),
						tracing.AttrErrorSource:                   string(c.source),
						tracing.AttrErrorReason:                   string(c.reason),
						tracing.AttrStreamVerdict:                 string(c.reason),
						tracing.AttrStreamBytes:                   strconv.Itoa(len(body)),
					})
					if id := attrs(s)[tracing.AttrRequestID].AsString(); !strings.HasPrefix(id, "gw-") {
						t.Errorf("request id %q", id)
					}
					wantStatus(t, s, codes.Error)
					if !strings.Contains(s.Status().Description, c.message) {
						t.Errorf("status description %q lacks %q", s.Status().Description, c.message)
					}
				})
			}
		})
	}
}

func newGateway(tls bool, model http.Handler) *gatewaytest.Server {
	if tls {
		return gatewaytest.NewTLSServer(model)
	}
	return gatewaytest.NewServer(model)
}

// TestClientStreamSpanEndsAfterBody: a 200 stream's span is open while the
// body is being read and ends at its EOF, with the stream attributes.
func TestClientStreamSpanEndsAfterBody(t *testing.T) {
	for _, p := range protocols {
		t.Run(p.name, func(t *testing.T) {
			f := newFixture(t)
			srv := newGateway(p.tls, gatewaytest.ChatStream(5))
			defer srv.Close()
			resp, err := tracedClient(srv, nil, f.cfg).Post(srv.URL+"/v1/chat/completions", "application/json", strings.NewReader(`{}`))
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if n := len(f.rec.Started()); n != 1 {
				t.Fatalf("%d spans started, want 1", n)
			}
			if n := len(f.rec.Ended()); n != 0 {
				t.Fatalf("%d spans ended at header time, want 0", n)
			}
			buf := make([]byte, 16)
			if _, err := io.ReadFull(resp.Body, buf); err != nil {
				t.Fatal(err)
			}
			if n := len(f.rec.Ended()); n != 0 {
				t.Fatalf("%d spans ended mid-stream, want 0", n)
			}
			rest, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			s := f.onlySpan(t) // ended at EOF, before Close
			resp.Body.Close()
			if n := len(f.rec.Ended()); n != 1 {
				t.Fatalf("Close after EOF: %d spans ended, want 1", n)
			}
			version := "1.1"
			if p.tls {
				version = "2"
			}
			want(t, s, map[string]string{
				string(semconv.HTTPRequestMethodKey):      "POST",
				string(semconv.HTTPResponseStatusCodeKey): "200",
				string(semconv.NetworkProtocolVersionKey): version,
				string(semconv.ServerAddressKey):          "127.0.0.1",
				string(semconv.URLFullKey):                srv.URL + "/v1/chat/completions",
				string(semconv.ErrorTypeKey):              "",
				tracing.AttrErrorSource:                   "",
				tracing.AttrStreamVerdict:                 tracing.VerdictComplete,
				tracing.AttrStreamBytes:                   strconv.Itoa(len(buf) + len(rest)),
				tracing.AttrStreamEvents:                  "", // no guard: events unknown
			})
			if !strings.HasSuffix(string(rest), "data: [DONE]\n\n") {
				t.Errorf("stream tail %q", rest)
			}
			a := attrs(s)
			if ttfb := a[tracing.AttrTimeToFirstByte].AsFloat64(); ttfb <= 0 || ttfb > s.EndTime().Sub(s.StartTime()).Seconds() {
				t.Errorf("time to first byte %v outside the span", ttfb)
			}
			if port := a[string(semconv.ServerPortKey)].AsInt64(); port <= 0 || !strings.HasSuffix(srv.URL, ":"+strconv.FormatInt(port, 10)) {
				t.Errorf("server.port %d for %s", port, srv.URL)
			}
			wantStatus(t, s, codes.Unset)
		})
	}
}

// TestClientTruncatedWithoutGuard: a stream cut after its 200 with no guard
// beneath is seen from the transport error alone: source network, reason
// truncated.
func TestClientTruncatedWithoutGuard(t *testing.T) {
	cases := []struct {
		name  string
		tls   bool
		fault gatewaytest.Fault
	}{
		{"http1 cut mid-chunk", false, gatewaytest.Cut(3)},
		{"http1 reset", false, gatewaytest.Reset(2)},
		{"http2 cut", true, gatewaytest.Cut(3)},
		{"http2 rst_stream", true, gatewaytest.Reset(2)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t)
			srv := newGateway(c.tls, gatewaytest.ChatStream(10))
			defer srv.Close()
			srv.Script(c.fault)
			resp, err := tracedClient(srv, nil, f.cfg).Get(srv.URL + "/v1/chat/completions")
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if n := len(f.rec.Ended()); n != 0 {
				t.Fatalf("%d spans ended at header time", n)
			}
			body, err := io.ReadAll(resp.Body)
			if err == nil {
				t.Fatalf("read %d bytes and no error: the fault did not cut", len(body))
			}
			s := f.onlySpan(t)
			want(t, s, map[string]string{
				string(semconv.HTTPResponseStatusCodeKey): "200",
				string(semconv.ErrorTypeKey):              "truncated",
				tracing.AttrErrorSource:                   "network",
				tracing.AttrErrorReason:                   "truncated",
				tracing.AttrStreamVerdict:                 "truncated",
				tracing.AttrStreamBytes:                   strconv.Itoa(len(body)),
			})
			wantStatus(t, s, codes.Error)
		})
	}
}

// TestClientGuardedStream: with a stream guard beneath, its verdict and
// statistics reach the span, whatever the failure.
func TestClientGuardedStream(t *testing.T) {
	cases := []struct {
		name      string
		end       *streamguard.Error // what the guard returns at the body's end
		source    string
		reason    string
		errorType string
		code      string
		status    codes.Code
	}{
		{"complete", nil, "", "", "", "", codes.Unset},
		{"truncated", &streamguard.Error{StatusCode: 200, Source: "network", Reason: "truncated", Retryable: true, Err: io.ErrUnexpectedEOF}, "network", "truncated", "truncated", "", codes.Error},
		{"in-band model error", &streamguard.Error{StatusCode: 200, Source: "model", Reason: "model_error", Code: "server_error", Message: "generation failed"}, "model", "model_error", "model_error", "server_error", codes.Error},
		{"in-band overloaded", &streamguard.Error{StatusCode: 200, Source: "platform", Reason: "unavailable", Code: "overloaded_error"}, "platform", "unavailable", "unavailable", "overloaded_error", codes.Error},
		{"stalled", &streamguard.Error{StatusCode: 200, Source: "platform", Reason: "stalled"}, "platform", "stalled", "stalled", "", codes.Error},
		{"event too large", &streamguard.Error{StatusCode: 200, Source: "model", Reason: "event_too_large"}, "model", "event_too_large", "event_too_large", "", codes.Error},
		{"canceled by caller", &streamguard.Error{StatusCode: 200, Source: "client", Reason: "canceled", Err: context.Canceled}, "client", "canceled", "", "", codes.Unset},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t)
			srv := gatewaytest.NewServer(gatewaytest.ChatStream(5))
			defer srv.Close()
			resp, err := tracedClient(srv, guarded(srv.Client().Transport, c.end), f.cfg).Get(srv.URL + "/v1/chat/completions")
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			rep, ok := resp.Body.(streamstat.Reporter)
			if !ok {
				t.Fatal("the traced body hides the guard's streamstat.Reporter")
			}
			_, err = io.ReadAll(resp.Body)
			var se *streamguard.Error
			if (c.end == nil) != (err == nil) || (c.end != nil && !errors.As(err, &se)) {
				t.Fatalf("read error %v: the guard's error must pass through unchanged", err)
			}
			if rep.StreamStats().Events != 6 {
				t.Errorf("forwarded stats %+v", rep.StreamStats())
			}
			s := f.onlySpan(t)
			verdict := c.reason
			if verdict == "" {
				verdict = tracing.VerdictComplete
			}
			want(t, s, map[string]string{
				tracing.AttrErrorSource:      c.source,
				tracing.AttrErrorReason:      c.reason,
				tracing.AttrErrorCode:        c.code,
				string(semconv.ErrorTypeKey): c.errorType,
				tracing.AttrStreamVerdict:    verdict,
				tracing.AttrStreamEvents:     "6",
				tracing.AttrStreamTerminal:   "true",
				tracing.AttrStreamDialect:    "openai",
			})
			wantStatus(t, s, c.status)
			a := attrs(s)
			ttfe, ttfb := a[tracing.AttrTimeToFirstEvent].AsFloat64(), a[tracing.AttrTimeToFirstByte].AsFloat64()
			if d := s.EndTime().Sub(s.StartTime()).Seconds(); ttfe <= 0 || ttfe > d || ttfb <= 0 || ttfb > d {
				t.Errorf("time to first event %v, to first byte %v, span %v s", ttfe, ttfb, d)
			}
		})
	}
}

// TestClientCloseBeforeEnd: a body closed before its EOF ends the span at
// Close; the verdict is complete when the guard saw the terminal event, and
// closed (not a failure) when it did not.
func TestClientCloseBeforeEnd(t *testing.T) {
	f := newFixture(t)
	// The model sends its whole stream and then holds the response open
	// until the client leaves: the body's EOF never comes.
	srv := quietServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		for i := range 3 {
			io.WriteString(w, "data: "+gatewaytest.ChatChunk(i)+"\n\n")
		}
		io.WriteString(w, "data: [DONE]\n\n")
		http.NewResponseController(w).Flush()
		<-r.Context().Done()
	}), false)
	client := &http.Client{Transport: tracing.NewTransport(guarded(srv.Client().Transport, nil), f.cfg)}

	// Read until the guard reports the terminal event, then close.
	resp, err := client.Get(srv.URL + "/v1/chat/completions")
	if err != nil {
		t.Fatal(err)
	}
	rep := resp.Body.(streamstat.Reporter)
	buf := make([]byte, 64)
	for i := 0; i < 1000 && !rep.StreamStats().Terminal; i++ {
		if _, err := resp.Body.Read(buf); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(f.rec.Ended()); n != 0 {
		t.Fatalf("%d spans ended before Close", n)
	}
	resp.Body.Close()
	want(t, f.waitSpan(t), map[string]string{tracing.AttrStreamVerdict: tracing.VerdictComplete, tracing.AttrErrorSource: "", tracing.AttrStreamEvents: "4"})

	// Close after the first read, before the terminal event.
	resp, err = client.Get(srv.URL + "/v1/chat/completions")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := resp.Body.Read(buf[:8]); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	s := f.waitSpan(t)
	want(t, s, map[string]string{tracing.AttrStreamVerdict: tracing.VerdictClosed, tracing.AttrErrorSource: "", string(semconv.ErrorTypeKey): ""})
	wantStatus(t, s, codes.Unset)
}

// TestClientNoResponse: a round trip that obtained no response is tagged with
// its source and reason; the caller's own cancellation is not an error.
func TestClientNoResponse(t *testing.T) {
	refused := func(t *testing.T) string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		return "http://" + addr + "/v1/chat/completions"
	}
	t.Run("connection refused", func(t *testing.T) {
		f := newFixture(t)
		client := &http.Client{Transport: tracing.NewTransport(&http.Transport{}, f.cfg)}
		_, err := client.Get(refused(t))
		var se *streamguard.Error
		if err == nil || errors.As(err, &se) {
			t.Fatalf("err %v: the transport must return base's error unchanged", err)
		}
		s := f.onlySpan(t)
		want(t, s, map[string]string{
			tracing.AttrErrorSource:                   "network",
			tracing.AttrErrorReason:                   "connection",
			string(semconv.ErrorTypeKey):              "connection",
			string(semconv.HTTPResponseStatusCodeKey): "",
		})
		wantStatus(t, s, codes.Error)
	})

	cases := []struct {
		name      string
		tls       bool
		cancel    func(context.Context) (context.Context, context.CancelFunc)
		source    string
		reason    string
		errorType string
		status    codes.Code
	}{
		{"http1 caller canceled", false, func(ctx context.Context) (context.Context, context.CancelFunc) {
			return context.WithCancel(ctx)
		}, "client", "canceled", "", codes.Unset},
		{"http2 caller canceled", true, func(ctx context.Context) (context.Context, context.CancelFunc) {
			return context.WithCancel(ctx)
		}, "client", "canceled", "", codes.Unset},
		{"http1 budget expired", false, func(ctx context.Context) (context.Context, context.CancelFunc) {
			ctx, cancel := context.WithCancelCause(ctx)
			return ctx, func() { cancel(streamguard.ErrBudgetExceeded) }
		}, "platform", "timeout", "timeout", codes.Error},
		{"http2 budget expired", true, func(ctx context.Context) (context.Context, context.CancelFunc) {
			ctx, cancel := context.WithCancelCause(ctx)
			return ctx, func() { cancel(streamguard.ErrBudgetExceeded) }
		}, "platform", "timeout", "timeout", codes.Error},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t)
			received := make(chan struct{})
			srv := quietServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				// net/http watches an HTTP/1 connection for the client's
				// close only once the request body is read.
				io.Copy(io.Discard, r.Body)
				close(received)
				<-r.Context().Done()
			}), c.tls)
			client := &http.Client{Transport: tracing.NewTransport(srv.Client().Transport, f.cfg)}
			ctx, cancel := c.cancel(context.Background())
			defer cancel()
			go func() {
				select {
				case <-received:
				case <-time.After(waitTimeout):
				}
				cancel()
			}()
			req, _ := http.NewRequestWithContext(ctx, "POST", srv.URL+"/predict", strings.NewReader(`{}`))
			if _, err := client.Do(req); err == nil {
				t.Fatal("no error")
			}
			s := f.onlySpan(t)
			want(t, s, map[string]string{
				tracing.AttrErrorSource:      c.source,
				tracing.AttrErrorReason:      c.reason,
				string(semconv.ErrorTypeKey): c.errorType,
			})
			wantStatus(t, s, c.status)
		})
	}

	t.Run("caller deadline", func(t *testing.T) {
		f := newFixture(t)
		srv := gatewaytest.NewServer(gatewaytest.ChatStream(1))
		defer srv.Close()
		ctx, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/v1/chat/completions", nil)
		if _, err := tracedClient(srv, nil, f.cfg).Do(req); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err %v", err)
		}
		s := f.onlySpan(t)
		want(t, s, map[string]string{tracing.AttrErrorSource: "client", tracing.AttrErrorReason: "timeout", string(semconv.ErrorTypeKey): "timeout"})
		wantStatus(t, s, codes.Error)
	})
}

// TestClientCanceledMidStream: the caller canceling while it reads a 200
// stream is source client, reason canceled, not an error; the budget's
// expiry at the same point is the platform's timeout, over HTTP/2 too,
// whose transport drops the context's cause.
func TestClientCanceledMidStream(t *testing.T) {
	for _, p := range protocols {
		for _, budget := range []bool{false, true} {
			name := p.name + " caller"
			if budget {
				name = p.name + " budget"
			}
			t.Run(name, func(t *testing.T) {
				f := newFixture(t)
				srv := newGateway(p.tls, gatewaytest.ChatStream(10))
				defer srv.Close()
				srv.Script(gatewaytest.Stall(2))
				ctx, cancel := context.WithCancelCause(context.Background())
				defer cancel(nil)
				req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/v1/chat/completions", nil)
				resp, err := tracedClient(srv, nil, f.cfg).Do(req)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				if _, err := resp.Body.Read(make([]byte, 8)); err != nil {
					t.Fatal(err)
				}
				if budget {
					cancel(streamguard.ErrBudgetExceeded)
				} else {
					cancel(nil)
				}
				if _, err := io.ReadAll(resp.Body); err == nil {
					t.Fatal("no error after cancel")
				}
				s := f.onlySpan(t)
				if budget {
					want(t, s, map[string]string{tracing.AttrErrorSource: "platform", tracing.AttrErrorReason: "timeout", string(semconv.ErrorTypeKey): "timeout", tracing.AttrStreamVerdict: "timeout"})
					wantStatus(t, s, codes.Error)
				} else {
					want(t, s, map[string]string{tracing.AttrErrorSource: "client", tracing.AttrErrorReason: "canceled", string(semconv.ErrorTypeKey): "", tracing.AttrStreamVerdict: "canceled"})
					wantStatus(t, s, codes.Unset)
				}
			})
		}
	}
}

// TestClientNoBody: a response without a body ends its span at once.
func TestClientNoBody(t *testing.T) {
	f := newFixture(t)
	srv := quietServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/204" {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		w.Header().Set("Content-Length", "10")
	}), false)
	client := &http.Client{Transport: tracing.NewTransport(srv.Client().Transport, f.cfg)}
	for i, r := range []struct{ method, path, status string }{{"HEAD", "/", "200"}, {"GET", "/204", "204"}} {
		req, _ := http.NewRequest(r.method, srv.URL+r.path, nil)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if n := len(f.rec.Ended()); n != i+1 {
			t.Fatalf("%s %s: %d spans ended before Close, want %d", r.method, r.path, n, i+1)
		}
		resp.Body.Close()
		want(t, f.rec.Ended()[i], map[string]string{string(semconv.HTTPResponseStatusCodeKey): r.status, tracing.AttrStreamVerdict: tracing.VerdictComplete})
	}
	if n := len(f.rec.Ended()); n != 2 {
		t.Fatalf("%d spans", n)
	}
}

// TestClientEndsOnce: Close racing a Read, Close twice, and Read after Close
// end the span exactly once (counted beneath the SDK, which would hide a
// second End).
func TestClientEndsOnce(t *testing.T) {
	for round := 0; round < 20; round++ {
		f := newFixture(t)
		var ends atomic.Int64
		cfg := f.cfg
		cfg.TracerProvider = countingProvider{tp: f.tp, ends: &ends}
		body := newBlockingBody(round%2 == 0)
		tr := tracing.NewTransport(rtFunc(func(r *http.Request) (*http.Response, error) {
			return &http.Response{StatusCode: 200, ProtoMajor: 1, ProtoMinor: 1, Header: http.Header{}, Body: body, Request: r}, nil
		}), cfg)
		req, _ := http.NewRequest("GET", "http://model.test/stream", nil)
		resp, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		readDone := make(chan error, 1)
		go func() {
			buf := make([]byte, 8)
			for i := 0; i < 100; i++ {
				if _, err := resp.Body.Read(buf); err != nil {
					readDone <- err
					return
				}
			}
			readDone <- nil
		}()
		<-body.reading
		closeDone := make(chan struct{})
		go func() { resp.Body.Close(); close(closeDone) }()
		resp.Body.Close()
		<-closeDone
		select {
		case <-readDone:
		case <-time.After(waitTimeout):
			t.Fatal("Read did not return after Close")
		}
		resp.Body.Read(make([]byte, 8))
		resp.Body.Close()
		if n := ends.Load(); n != 1 {
			t.Fatalf("round %d: End called %d times, want 1", round, n)
		}
		if n := len(f.rec.Ended()); n != 1 {
			t.Fatalf("round %d: %d spans ended", round, n)
		}
	}
}

// blockingBody delivers one chunk, then blocks in Read until Close; when eof
// is set the blocked Read returns io.EOF instead of an error, so that the
// EOF and the Close race to end the span.
type blockingBody struct {
	eof     bool
	reading chan struct{} // closed when the first blocking Read starts
	closed  chan struct{}
	once    sync.Once
	rOnce   sync.Once
	sent    atomic.Bool
}

func newBlockingBody(eof bool) *blockingBody {
	return &blockingBody{eof: eof, reading: make(chan struct{}), closed: make(chan struct{})}
}

func (b *blockingBody) Read(p []byte) (int, error) {
	if !b.sent.Swap(true) {
		return copy(p, "data: x\n\n"), nil
	}
	b.rOnce.Do(func() { close(b.reading) })
	<-b.closed
	if b.eof {
		return 0, io.EOF
	}
	return 0, errors.New("http: read on closed response body")
}

func (b *blockingBody) Close() error {
	b.once.Do(func() { close(b.closed) })
	return nil
}

// TestClientResendCount: the retry layer's attempt number in the request's
// context becomes http.request.resend_count on resends only.
func TestClientResendCount(t *testing.T) {
	f := newFixture(t)
	tr := tracing.NewTransport(rtFunc(func(r *http.Request) (*http.Response, error) {
		return &http.Response{StatusCode: 200, Header: http.Header{}, Body: http.NoBody, Request: r}, nil
	}), f.cfg)
	for _, c := range []struct{ attempt, resends int }{{0, 0}, {1, 0}, {2, 1}, {5, 4}} {
		ctx := context.Background()
		if c.attempt > 0 {
			ctx = ctxkey.WithAttempt(ctx, c.attempt)
		}
		req, _ := http.NewRequestWithContext(ctx, "POST", "http://model.test/predict", nil)
		if _, err := tr.RoundTrip(req); err != nil {
			t.Fatal(err)
		}
		s := f.waitSpan(t)
		wantCount := ""
		if c.resends > 0 {
			wantCount = strconv.Itoa(c.resends)
		}
		want(t, s, map[string]string{string(semconv.HTTPRequestResendCountKey): wantCount})
	}
}

// TestClientPropagation: the W3C trace context of the attempt's span is
// injected into the request the server sees, and the caller's request is not
// modified.
func TestClientPropagation(t *testing.T) {
	f := newFixture(t)
	srv := gatewaytest.NewServer(gatewaytest.JSON(200, `{"ok":true}`))
	defer srv.Close()
	ctx, parent := f.tp.Tracer("test").Start(context.Background(), "caller")
	req, _ := http.NewRequestWithContext(ctx, "POST", srv.URL+"/predict", strings.NewReader(`{}`))
	req.Header.Set("Content-Type", "application/json")
	resp, err := tracedClient(srv, nil, f.cfg).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	parent.End()
	if got := req.Header.Get("Traceparent"); got != "" {
		t.Errorf("the caller's request was modified: traceparent %q", got)
	}
	var client sdktrace.ReadOnlySpan
	for _, s := range f.rec.Ended() {
		if s.SpanKind() == trace.SpanKindClient {
			client = s
		}
	}
	if client == nil {
		t.Fatal("no client span")
	}
	if client.Parent().SpanID() != parent.SpanContext().SpanID() {
		t.Errorf("client span's parent %s, want the caller's %s", client.Parent().SpanID(), parent.SpanContext().SpanID())
	}
	sc := client.SpanContext()
	wantTP := "00-" + sc.TraceID().String() + "-" + sc.SpanID().String() + "-01"
	if got := srv.Records()[0].Header.Get("Traceparent"); got != wantTP {
		t.Errorf("server saw traceparent %q, want %q", got, wantTP)
	}
}

// TestClientRedaction: no credential of the request (userinfo, query
// values, Authorization, Api-Key, Cookie) appears anywhere on the span, even
// when the server echoes the key back in its error body.
func TestClientRedaction(t *testing.T) {
	secrets := []string{"pa55word-userinfo", "sk-query-secret", "tok-secret-123", "sig-abcdef", "bare-secret-xyz", "sk-header-secret", "apikey-secret-9", "cookie-secret-7"}
	f := newFixture(t)
	srv := gatewaytest.NewServer(gatewaytest.ChatStream(1))
	defer srv.Close()
	srv.Script(gatewaytest.Status(401, `{"error":"Incorrect API key provided: sk-header-secret (query sk-query-secret)"}`))
	host := strings.TrimPrefix(srv.URL, "http://")
	raw := "http://user:pa55word-userinfo@" + host + "/v1/chat?api_key=sk-query-secret&token=tok-secret-123&Signature=sig-abcdef&stream=true&bare-secret-xyz"
	client := tracedClient(srv, nil, f.cfg)
	for _, u := range []string{raw, strings.Replace(raw, host, "127.0.0.1:1", 1)} { // a 401, then a refused connection
		req, _ := http.NewRequest("GET", u, nil)
		req.Header.Set("Authorization", "Bearer sk-header-secret")
		req.Header.Set("Api-Key", "apikey-secret-9")
		req.Header.Set("Cookie", "session=cookie-secret-7; theme=dark")
		if resp, err := client.Do(req); err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}
	spans := f.rec.Ended()
	if len(spans) != 2 {
		t.Fatalf("%d spans", len(spans))
	}
	wantURL := "http://REDACTED:REDACTED@" + host + "/v1/chat?api_key=REDACTED&token=REDACTED&Signature=REDACTED&stream=REDACTED&REDACTED"
	want(t, spans[0], map[string]string{string(semconv.URLFullKey): wantURL, tracing.AttrErrorReason: "unauthorized"})
	want(t, spans[1], map[string]string{tracing.AttrErrorReason: "connection"})
	if !strings.Contains(spans[0].Status().Description, "Incorrect API key provided: REDACTED") {
		t.Errorf("description %q: the message should stay, scrubbed", spans[0].Status().Description)
	}
	for _, s := range spans {
		text := everything(s)
		for _, secret := range secrets {
			if strings.Contains(text, secret) {
				t.Errorf("span carries %q:\n%s", secret, text)
			}
		}
	}
}

// TestClientNotRecording: with a no-op provider or a sampler that drops the
// span, and no metrics, the body is returned unwrapped.
func TestClientNotRecording(t *testing.T) {
	for name, tp := range map[string]trace.TracerProvider{
		"noop":         noop.NewTracerProvider(),
		"never sample": sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.NeverSample())),
	} {
		t.Run(name, func(t *testing.T) {
			body := io.NopCloser(strings.NewReader("data: x\n\n"))
			tr := tracing.NewTransport(rtFunc(func(r *http.Request) (*http.Response, error) {
				return &http.Response{StatusCode: 200, Header: http.Header{}, Body: body, Request: r}, nil
			}), tracing.Config{TracerProvider: tp})
			req, _ := http.NewRequest("GET", "http://model.test/", nil)
			resp, err := tr.RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			if resp.Body != body {
				t.Errorf("body wrapped in %T", resp.Body)
			}
		})
	}
}

// TestClientConcurrent runs many traced streams at once over one HTTP/2
// connection, for the race detector.
func TestClientConcurrent(t *testing.T) {
	f := newFixture(t)
	srv := gatewaytest.NewTLSServer(gatewaytest.ChatStream(20))
	defer srv.Close()
	client := tracedClient(srv, guarded(srv.Client().Transport, nil), f.cfg)
	// One request first, so that the burst shares its HTTP/2 connection
	// instead of dialing several.
	resp, err := client.Get(srv.URL + "/v1/chat/completions")
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for range 16 {
		wg.Go(func() {
			resp, err := client.Get(srv.URL + "/v1/chat/completions")
			if err != nil {
				errs <- err
				return
			}
			defer resp.Body.Close()
			if _, err := io.Copy(io.Discard, resp.Body); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for _, s := range f.rec.Ended() {
		want(t, s, map[string]string{tracing.AttrStreamVerdict: tracing.VerdictComplete, tracing.AttrStreamEvents: "21"})
	}
	if n := len(f.rec.Ended()); n != 17 {
		t.Errorf("%d spans", n)
	}
}
