package middleware_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/streamguard/streamguard"
	"github.com/streamguard/streamguard/gatewaytest"
	"github.com/streamguard/streamguard/middleware"
	"github.com/streamguard/streamguard/retry"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fast is a retry policy that waits a millisecond between attempts.
func fast() retry.Policy {
	return retry.Policy{Backoff: func() backoff.BackOff { return backoff.NewConstantBackOff(time.Millisecond) }}
}

// clientFor returns the full client stack over the server's own transport
// (which trusts its TLS certificate).
func clientFor(t *testing.T, srv interface{ Client() *http.Client }, cfg middleware.Config) *http.Client {
	t.Helper()
	if cfg.Base == nil {
		cfg.Base = srv.Client().Transport
	}
	if cfg.Retry.Backoff == nil {
		cfg.Retry.Backoff = fast().Backoff
	}
	c := middleware.NewClient(cfg)
	t.Cleanup(c.CloseIdleConnections)
	return c
}

func TestChainOrder(t *testing.T) {
	var order []string
	layer := func(name string) func(http.RoundTripper) http.RoundTripper {
		return func(next http.RoundTripper) http.RoundTripper {
			return roundTripFunc(func(r *http.Request) (*http.Response, error) {
				order = append(order, name)
				return next.RoundTrip(r)
			})
		}
	}
	base := roundTripFunc(func(r *http.Request) (*http.Response, error) {
		order = append(order, "base")
		return &http.Response{StatusCode: 204, Body: http.NoBody, Request: r}, nil
	})
	rt := middleware.Chain(base, layer("a"), layer("b"), layer("c"))
	resp, err := rt.RoundTrip(httptest.NewRequest("GET", "http://x/", nil))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if fmt.Sprint(order) != "[a b c base]" {
		t.Fatalf("order %v", order)
	}
	order = nil
	resp, err = middleware.Chain(base).RoundTrip(httptest.NewRequest("GET", "http://x/", nil))
	if err != nil || fmt.Sprint(order) != "[base]" {
		t.Fatalf("Chain with no layers: %v %v", order, err)
	}
	resp.Body.Close()
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// timeoutSeen answers with the Request-Timeout-Ms the stack sent.
func timeoutSeen() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.Header.Get(middleware.TimeoutHeader))
	})
}

func getMillis(t *testing.T, c *http.Client, ctx context.Context, url string) int64 {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, "POST", url, strings.NewReader("{}"))
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	ms, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil {
		t.Fatalf("Request-Timeout-Ms %q", b)
	}
	return ms
}

func TestBudgetHeader(t *testing.T) {
	srv := httptest.NewServer(timeoutSeen())
	defer srv.Close()
	c := clientFor(t, srv, middleware.Config{})
	near := func(got int64, want time.Duration) bool {
		return got <= want.Milliseconds() && got > (want-5*time.Second).Milliseconds()
	}
	t.Run("sync default plus grace", func(t *testing.T) {
		if ms := getMillis(t, c, context.Background(), srv.URL+"/production/predict"); !near(ms, streamguard.SyncBudget+middleware.DefaultGrace) {
			t.Errorf("%d ms", ms)
		}
	})
	t.Run("async route", func(t *testing.T) {
		if ms := getMillis(t, c, context.Background(), srv.URL+"/production/async_predict"); !near(ms, streamguard.AsyncBudget+middleware.DefaultGrace) {
			t.Errorf("%d ms", ms)
		}
	})
	t.Run("caller's shorter deadline wins", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if ms := getMillis(t, c, ctx, srv.URL+"/predict"); !near(ms, 30*time.Second) {
			t.Errorf("%d ms", ms)
		}
	})
	t.Run("caller's longer deadline is capped", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Hour)
		defer cancel()
		if ms := getMillis(t, c, ctx, srv.URL+"/predict"); !near(ms, streamguard.SyncBudget+middleware.DefaultGrace) {
			t.Errorf("%d ms", ms)
		}
	})
	t.Run("configured budget and no grace", func(t *testing.T) {
		c := clientFor(t, srv, middleware.Config{Budget: time.Minute, Grace: -1})
		if ms := getMillis(t, c, context.Background(), srv.URL+"/predict"); !near(ms, time.Minute) {
			t.Errorf("%d ms", ms)
		}
	})
}

// The budget bounds the whole request: headers that never come, and a
// stream that outlives it, end as the platform's timeout, not the caller's.
func TestBudgetExpires(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/stream" {
			w.Header().Set("Content-Type", "text/event-stream")
			io.WriteString(w, "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\"}\n\n")
			http.NewResponseController(w).Flush()
		}
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	defer srv.Close()
	defer close(release)
	c := clientFor(t, srv, middleware.Config{Budget: 100 * time.Millisecond, Grace: -1})

	_, err := c.Get(srv.URL + "/headers")
	var se *streamguard.Error
	if !errors.As(err, &se) || se.Reason != streamguard.ReasonTimeout || se.Source != streamguard.SourcePlatform {
		t.Fatalf("before headers: %v", err)
	}

	resp, err := c.Get(srv.URL + "/stream")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	if !errors.As(err, &se) || se.Reason != streamguard.ReasonTimeout || se.Source != streamguard.SourcePlatform || se.Events != 1 {
		t.Fatalf("mid-stream: %v (read %q)", err, got)
	}
}

func TestNewClientIsTuned(t *testing.T) {
	c := middleware.NewClient(middleware.Config{})
	if c.Timeout != 0 {
		t.Errorf("Timeout = %v, want 0: a wall-clock timeout kills streams", c.Timeout)
	}
	b := middleware.DefaultBase(streamguard.SyncBudget)
	if b.IdleConnTimeout != 30*time.Second || b.MaxConnsPerHost != 256 || b.MaxIdleConnsPerHost != 128 ||
		b.TLSHandshakeTimeout != 10*time.Second || b.ResponseHeaderTimeout != streamguard.SyncBudget || !b.ForceAttemptHTTP2 {
		t.Errorf("base transport: %+v", b)
	}
}

func TestErrorStatusOption(t *testing.T) {
	gw := gatewaytest.NewServer(gatewaytest.JSON(200, `{}`))
	defer gw.Close()
	var closed bool
	base := roundTripFunc(func(r *http.Request) (*http.Response, error) {
		resp, err := gw.Client().Transport.RoundTrip(r)
		if err == nil {
			resp.Body = &closeSpy{ReadCloser: resp.Body, closed: &closed}
		}
		return resp, err
	})
	c := clientFor(t, gw, middleware.Config{Base: base, ErrorStatus: true})
	gw.Script(gatewaytest.Unreachable(), gatewaytest.Unreachable(), gatewaytest.Unreachable(), gatewaytest.Unreachable(), gatewaytest.Unreachable())
	resp, err := c.Post(gw.URL+"/v1/chat/completions", "application/json", strings.NewReader("{}"))
	if resp != nil {
		t.Fatalf("response %d returned with ErrorStatus", resp.StatusCode)
	}
	var se *streamguard.Error
	if !errors.As(err, &se) || se.StatusCode != 502 || se.Reason != streamguard.ReasonUnreachable ||
		se.Message != gatewaytest.MessageUnreachable || se.Attempts != 5 {
		t.Fatalf("err = %#v", err)
	}
	if !closed {
		t.Error("the error response's body was not closed")
	}
	// Without the option the response comes back, body intact.
	gw.Script(gatewaytest.Status(404, `{"error":"Model not found"}`))
	c2 := clientFor(t, gw, middleware.Config{})
	resp, err = c2.Get(gw.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := streamguard.Check(resp); err == nil || resp.StatusCode != 404 {
		t.Fatalf("Check = %v", err)
	}
}

type closeSpy struct {
	io.ReadCloser
	closed *bool
}

func (c *closeSpy) Close() error { *c.closed = true; return c.ReadCloser.Close() }

// zeroReader is an endless body of zeros.
type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

func TestBodyLimitsBeforeSending(t *testing.T) {
	gw := gatewaytest.NewServer(gatewaytest.Echo())
	defer gw.Close()
	c := clientFor(t, gw, middleware.Config{})
	send := func(path string, size int64, known bool) error {
		var body io.Reader = io.LimitReader(zeroReader{}, size)
		req, _ := http.NewRequest("POST", gw.URL+path, body)
		if known {
			req.ContentLength = size
		} else {
			req.ContentLength = -1
		}
		resp, err := c.Do(req)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		return err
	}
	cases := []struct {
		name  string
		path  string
		size  int64
		known bool
		msg   string
	}{
		{"edge cap by length", "/production/predict", streamguard.EdgeMaxBody + 1, true,
			"payload size of 104857601 bytes exceeds maximum size of 104857600 bytes"},
		{"async cap by length", "/production/async_predict", streamguard.AsyncMaxBody + 1, true,
			"payload size of 262145 bytes exceeds maximum size of 262144 bytes"},
		{"async cap while sending", "/production/async_predict", 1 << 20, false,
			"payload size of at least 262145 bytes exceeds maximum size of 262144 bytes"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := gw.BodyBytes()
			err := send(tc.path, tc.size, tc.known)
			var se *streamguard.Error
			if !errors.As(err, &se) || se.Reason != streamguard.ReasonPayloadTooLarge || se.Source != streamguard.SourceRequest || se.Message != tc.msg {
				t.Fatalf("err = %v", err)
			}
			if sent := gw.BodyBytes() - before; sent > streamguard.AsyncMaxBody+1 {
				t.Errorf("%d bytes reached the gateway", sent)
			}
		})
	}
	if err := send("/production/async_predict", streamguard.AsyncMaxBody, true); err != nil {
		t.Fatalf("at the limit: %v", err)
	}
}

func TestRedirectDropsCredentials(t *testing.T) {
	var got http.Header
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.Header.Clone()
	}))
	defer other.Close()
	// The same loopback, by another host name.
	target := strings.Replace(other.URL, "127.0.0.1", "localhost", 1)
	first := httptest.NewServer(http.RedirectHandler(target+"/next", http.StatusFound))
	defer first.Close()
	c := middleware.NewClient(middleware.Config{})
	defer c.CloseIdleConnections()
	req, _ := http.NewRequest("GET", first.URL, nil)
	req.Header.Set("Authorization", "Api-Key SECRET1")
	req.Header.Set("Api-Key", "SECRET2")
	req.Header.Set("X-Api-Key", "SECRET3")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got == nil {
		t.Fatal("the redirect was not followed")
	}
	for _, k := range []string{"Authorization", "Api-Key", "X-Api-Key"} {
		if v := got.Get(k); v != "" {
			t.Errorf("%s reached another host: %q", k, v)
		}
	}
}

// TestAsyncRouteHeaderTimeout: an async route's answer may take longer
// than the sync budget (the base transport's header timeout was the sync
// deadline, for both kinds of routes), while a sync route's still ends at
// its own.
func TestAsyncRouteHeaderTimeout(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(600 * time.Millisecond):
		case <-r.Context().Done():
			return
		}
		w.Write([]byte(`{"request_id":"x"}`))
	}))
	defer srv.Close()
	c := middleware.NewClient(middleware.Config{Budget: 300 * time.Millisecond, AsyncBudget: 10 * time.Second,
		Retry: retry.Policy{MaxAttempts: 1}})
	resp, err := c.Post(srv.URL+"/model/async_predict", "application/json", strings.NewReader(`{}`))
	if err != nil {
		t.Fatalf("async route answered in 600 ms with AsyncBudget 10 s: %v", err)
	}
	resp.Body.Close()
	resp, err = c.Post(srv.URL+"/model/predict", "application/json", strings.NewReader(`{}`))
	if err == nil {
		resp.Body.Close()
		t.Fatal("sync route answered in 600 ms with Budget 300 ms: no timeout")
	}
}
