package retry_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/streamguard/streamguard"
	"github.com/streamguard/streamguard/gatewaytest"
	"github.com/streamguard/streamguard/retry"
)

// countingBody counts its Closes.
type countingBody struct {
	io.Reader
	closes atomic.Int32
}

func (b *countingBody) Close() error { b.closes.Add(1); return nil }

// opaqueReader hides its reader's type from http.NewRequest, so that the
// request gets neither GetBody nor a ContentLength.
type opaqueReader struct{ r io.Reader }

func (o opaqueReader) Read(p []byte) (int, error) { return o.r.Read(p) }

func randomBody(n int) []byte {
	b := make([]byte, n)
	r := rand.New(rand.NewPCG(1, uint64(n)))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// Issue bullet: bodies are replayed via GetBody or buffered up to a
// bounded size; each attempt's body is byte-identical; larger or
// unknown-length bodies get one attempt only.
func TestBodies(t *testing.T) {
	payload := randomBody(100 << 10)
	cases := []struct {
		name     string
		tls      bool
		limit    int64
		req      func(url string) *http.Request
		requests int64 // the gateway sees; 3 means replayed twice
		status   int
	}{
		{"GetBody replays are byte-identical", false, 0, func(url string) *http.Request {
			r, _ := http.NewRequest("POST", url, bytes.NewReader(payload))
			return r
		}, 3, 200},
		{"GetBody replays are byte-identical over HTTP/2", true, 0, func(url string) *http.Request {
			r, _ := http.NewRequest("POST", url, bytes.NewReader(payload))
			return r
		}, 3, 200},
		{"a body of known length without GetBody is buffered and replayed", false, 0, func(url string) *http.Request {
			r, _ := http.NewRequest("POST", url, opaqueReader{bytes.NewReader(payload)})
			r.ContentLength = int64(len(payload))
			return r
		}, 3, 200},
		{"a buffered body is replayed over HTTP/2", true, 0, func(url string) *http.Request {
			r, _ := http.NewRequest("POST", url, opaqueReader{bytes.NewReader(payload)})
			r.ContentLength = int64(len(payload))
			return r
		}, 3, 200},
		{"a body of unknown length is sent once", false, 0, func(url string) *http.Request {
			r, _ := http.NewRequest("POST", url, opaqueReader{bytes.NewReader(payload)})
			return r
		}, 1, 503},
		{"a body over MaxBufferedBody is sent once", false, int64(len(payload)) - 1, func(url string) *http.Request {
			r, _ := http.NewRequest("POST", url, opaqueReader{bytes.NewReader(payload)})
			r.ContentLength = int64(len(payload))
			return r
		}, 1, 503},
		{"a negative MaxBufferedBody never buffers", false, -1, func(url string) *http.Request {
			r, _ := http.NewRequest("POST", url, opaqueReader{bytes.NewReader(payload)})
			r.ContentLength = int64(len(payload))
			return r
		}, 1, 503},
		{"a POST without a body is replayed", false, 0, func(url string) *http.Request {
			r, _ := http.NewRequest("POST", url, nil)
			return r
		}, 3, 200},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			newServer := gatewaytest.NewServer
			if c.tls {
				newServer = gatewaytest.NewTLSServer
			}
			gw := newServer(gatewaytest.Echo())
			defer gw.Close()
			gw.Script(gatewaytest.Draining(0), gatewaytest.Unreachable())
			rt := retry.NewTransport(gw.Client().Transport, fast(retry.Policy{MaxBufferedBody: c.limit}))
			req := c.req(gw.URL + "/predict")
			ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
			defer cancel()
			resp, err := rt.RoundTrip(req.WithContext(ctx))
			if err != nil {
				t.Fatal(err)
			}
			got := readAll(t, resp)
			if resp.StatusCode != c.status || gw.Requests() != c.requests {
				t.Fatalf("status %d after %d requests, want %d after %d", resp.StatusCode, gw.Requests(), c.status, c.requests)
			}
			want := payload
			if req.ContentLength == 0 && req.Body == nil {
				want = nil
			}
			for _, rec := range gw.Records() {
				if !bytes.Equal(rec.Body, want) {
					t.Errorf("request %d carried %d bytes, not the %d sent", rec.N, len(rec.Body), len(want))
				}
			}
			if c.status == 200 && !bytes.Equal(got, want) {
				t.Errorf("echo is %d bytes, want %d", len(got), len(want))
			}
		})
	}

	t.Run("every request body is closed", func(t *testing.T) {
		gw := gatewaytest.NewServer(gatewaytest.Echo())
		defer gw.Close()
		gw.Script(gatewaytest.Draining(0), gatewaytest.Draining(0))
		var mu sync.Mutex
		var bodies []*countingBody
		newBody := func() *countingBody {
			b := &countingBody{Reader: strings.NewReader("{}")}
			mu.Lock()
			bodies = append(bodies, b)
			mu.Unlock()
			return b
		}
		req := httpRequest(t, "POST", gw.URL+"/predict", nil)
		req.Body, req.ContentLength = newBody(), 2
		req.GetBody = func() (io.ReadCloser, error) { return newBody(), nil }
		rt := retry.NewTransport(gw.Client().Transport, fast(retry.Policy{}))
		resp, err := rt.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		readAll(t, resp)
		if len(bodies) != 3 {
			t.Fatalf("%d bodies, want 3", len(bodies))
		}
		for i, b := range bodies {
			if n := b.closes.Load(); n < 1 {
				t.Errorf("body %d closed %d times", i, n)
			}
		}
	})

	t.Run("a buffered body is closed once read", func(t *testing.T) {
		srv := newPlainServer(t, gatewaytest.Echo())
		body := &countingBody{Reader: strings.NewReader("hello")}
		req := httpRequest(t, "PUT", srv.URL, nil)
		req.Body, req.ContentLength = body, 5
		resp, err := retry.NewTransport(plainTransport(t), retry.Policy{}).RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		if got := readAll(t, resp); string(got) != "hello" || body.closes.Load() != 1 {
			t.Errorf("echo %q, body closed %d times", got, body.closes.Load())
		}
	})

	t.Run("a body shorter than its ContentLength is the request's error", func(t *testing.T) {
		body := &countingBody{Reader: strings.NewReader("abc")}
		req := httpRequest(t, "POST", "http://127.0.0.1:1/", nil)
		req.Body, req.ContentLength = body, 10
		_, err := retry.NewTransport(plainTransport(t), retry.Policy{}).RoundTrip(req)
		se := asError(t, err)
		if se.Source != streamguard.SourceRequest || !strings.Contains(se.Message, "ContentLength=10 with Body length 3") || body.closes.Load() != 1 {
			t.Errorf("err = %v, body closed %d times", err, body.closes.Load())
		}
	})

	t.Run("a GetBody failure returns the last response intact", func(t *testing.T) {
		gw := gatewaytest.NewServer(gatewaytest.Echo())
		defer gw.Close()
		gw.Script(gatewaytest.Unreachable())
		req := httpRequest(t, "POST", gw.URL+"/predict", strings.NewReader("{}"))
		req.GetBody = func() (io.ReadCloser, error) { return nil, errors.New("no replay") }
		resp, err := retry.NewTransport(gw.Client().Transport, fast(retry.Policy{})).RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		if got := readAll(t, resp); resp.StatusCode != 502 || !bytes.Contains(got, []byte(gatewaytest.MessageUnreachable)) || gw.Requests() != 1 {
			t.Errorf("%d %q after %d requests", resp.StatusCode, got, gw.Requests())
		}
	})

	t.Run("the caller's request is not modified", func(t *testing.T) {
		gw := gatewaytest.NewServer(gatewaytest.Echo())
		defer gw.Close()
		gw.Script(gatewaytest.Draining(0), gatewaytest.Unreachable())
		ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, "POST", gw.URL+"/predict", strings.NewReader("{}"))
		req.Header.Set("Authorization", "Bearer k")
		before := *req
		header := req.Header.Clone()
		resp, err := retry.NewTransport(gw.Client().Transport, fast(retry.Policy{})).RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		readAll(t, resp)
		if req.Context() != ctx || req.Body != before.Body || req.ContentLength != before.ContentLength ||
			!reflect.DeepEqual(req.Header, header) || req.URL != before.URL || resp.Request == req {
			t.Error("the caller's request was modified, or handed to the base")
		}
	})
}

// Issue bullet: every discarded response body is drained (bounded) and
// closed before the wait, so connections are reused.
func TestConnectionHygiene(t *testing.T) {
	t.Run("discarded bodies are closed before the wait and the connection is reused", func(t *testing.T) {
		gw := gatewaytest.NewServer(gatewaytest.JSON(200, `{"ok":true}`))
		defer gw.Close()
		gw.Script(gatewaytest.Draining(0), gatewaytest.Unreachable(), gatewaytest.Status(503, "<html><title>503</title></html>"))

		var dials atomic.Int32
		tr := plainTransport(t)
		dialer := &net.Dialer{}
		tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
			dials.Add(1)
			return dialer.DialContext(ctx, network, addr)
		}
		var mu sync.Mutex
		var open []*countingBody
		base := roundTripFunc(func(r *http.Request) (*http.Response, error) {
			mu.Lock()
			for i, b := range open {
				if b.closes.Load() == 0 {
					t.Errorf("attempt %d started before response %d's body was closed", len(open)+1, i+1)
				}
			}
			mu.Unlock()
			resp, err := tr.RoundTrip(r)
			if err == nil {
				b := &countingBody{Reader: resp.Body}
				resp.Body = struct {
					io.Reader
					io.Closer
				}{b, closeBoth{b, resp.Body}}
				mu.Lock()
				open = append(open, b)
				mu.Unlock()
			}
			return resp, err
		})
		var rec recorder
		rt := retry.NewTransport(base, fast(retry.Policy{OnRetry: func(a retry.Attempt) {
			mu.Lock()
			if b := open[a.N-1]; b.closes.Load() == 0 {
				t.Errorf("OnRetry for attempt %d before its body was closed", a.N)
			}
			mu.Unlock()
			rec.OnRetry(a)
		}}))
		resp := mustDo(t, rt, "GET", gw.URL+"/predict")
		readAll(t, resp)
		if resp.StatusCode != 200 || len(rec.all()) != 3 {
			t.Fatalf("status %d after %d retries", resp.StatusCode, len(rec.all()))
		}
		if n := dials.Load(); n != 1 {
			t.Errorf("%d connections dialed for 4 attempts, want 1 reused", n)
		}
		if n := gw.OpenConns(); n != 1 {
			t.Errorf("server holds %d connections, want 1", n)
		}
	})

	t.Run("retries never close idle connections", func(t *testing.T) {
		gw := gatewaytest.NewServer(gatewaytest.JSON(200, `{}`))
		defer gw.Close()
		gw.Script(gatewaytest.Draining(0), gatewaytest.Unreachable())
		closed := false
		base := &idleCloser{RoundTripper: gw.Client().Transport, closed: &closed}
		resp := mustDo(t, retry.NewTransport(base, fast(retry.Policy{})), "GET", gw.URL+"/predict")
		readAll(t, resp)
		if resp.StatusCode != 200 || closed {
			t.Errorf("status %d; CloseIdleConnections called: %v", resp.StatusCode, closed)
		}
	})

	t.Run("a large error body is drained at most 64 KiB", func(t *testing.T) {
		huge := strings.Repeat("<p>busy</p>", 1<<17) // 1.4 MB
		srv := newPlainServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader(502)
			io.WriteString(w, huge)
		}))
		tr := plainTransport(t)
		var mu sync.Mutex
		var read []*countingReader
		base := roundTripFunc(func(r *http.Request) (*http.Response, error) {
			resp, err := tr.RoundTrip(r)
			if err == nil {
				cr := &countingReader{ReadCloser: resp.Body}
				resp.Body = cr
				mu.Lock()
				read = append(read, cr)
				mu.Unlock()
			}
			return resp, err
		})
		rt := retry.NewTransport(base, fast(retry.Policy{MaxAttempts: 3}))
		resp := mustDo(t, rt, "GET", srv.URL)
		if got := readAll(t, resp); string(got) != huge {
			t.Errorf("the last body is %d bytes, want %d", len(got), len(huge))
		}
		if len(read) != 3 {
			t.Fatalf("%d attempts, want 3", len(read))
		}
		for i, cr := range read[:2] {
			if n := cr.n.Load(); n > streamguard.MaxErrorBody+1 || !cr.closed.Load() {
				t.Errorf("discarded body %d: read %d bytes, closed %v", i+1, n, cr.closed.Load())
			}
		}
	})
}

type closeBoth struct{ a, b io.Closer }

func (c closeBoth) Close() error { c.a.Close(); return c.b.Close() }

type countingReader struct {
	io.ReadCloser
	n      atomic.Int64
	closed atomic.Bool
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.ReadCloser.Read(p)
	c.n.Add(int64(n))
	return n, err
}

func (c *countingReader) Close() error { c.closed.Store(true); return c.ReadCloser.Close() }

// Issue bullet: connection failures with no response are retried; a failure
// after the body may have reached a server only for idempotent requests,
// an Idempotency-Key, or the policy's opt-in.
func TestConnectionFailures(t *testing.T) {
	const maxAttempts = 3
	// abort reads the request and then breaks the connection without a
	// response: a reset before any response byte.
	var aborts atomic.Int32
	abort := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		aborts.Add(1)
		panic(http.ErrAbortHandler)
	})
	resetCases := []struct {
		name    string
		method  string
		header  []string
		unsafe  bool
		retried bool
	}{
		{"GET is retried", "GET", nil, false, true},
		{"PUT is retried", "PUT", nil, false, true},
		{"POST is not retried", "POST", nil, false, false},
		{"POST with Idempotency-Key is retried", "POST", []string{"Idempotency-Key", "k1"}, false, true},
		{"POST with X-Idempotency-Key is retried", "POST", []string{"X-Idempotency-Key", "k1"}, false, true},
		{"POST is retried with RetryNonIdempotent", "POST", nil, true, true},
	}
	for _, proto := range []string{"HTTP/1.1", "HTTP/2"} {
		for _, c := range resetCases {
			t.Run("reset before the response: "+proto+": "+c.name, func(t *testing.T) {
				aborts.Store(0)
				var base http.RoundTripper
				var url string
				if proto == "HTTP/2" {
					srv, tr := h2Server(t, abort)
					base, url = tr, srv.URL
				} else {
					srv := newPlainServer(t, abort)
					base, url = plainTransport(t), srv.URL
				}
				rt := retry.NewTransport(base, fast(retry.Policy{MaxAttempts: maxAttempts, RetryNonIdempotent: c.unsafe}))
				var body io.Reader
				if c.method != "GET" {
					body = strings.NewReader(`{"prompt":"hi"}`)
				}
				_, err := do(t, rt, c.method, url, body, c.header...)
				se := asError(t, err)
				want := int32(1)
				if c.retried {
					want = maxAttempts
				}
				if se.Source != streamguard.SourceNetwork || se.Reason != streamguard.ReasonConnection || se.Attempts != int(want) || aborts.Load() != want {
					t.Errorf("err = %v (%s %s, %d attempts; server saw %d), want %d attempts", err, se.Source, se.Reason, se.Attempts, aborts.Load(), want)
				}
			})
		}
	}

	t.Run("connection refused is retried for POST", func(t *testing.T) {
		var rec recorder
		rt := retry.NewTransport(plainTransport(t), fast(retry.Policy{MaxAttempts: maxAttempts, OnRetry: rec.OnRetry}))
		_, err := do(t, rt, "POST", "http://"+closedAddr(t)+"/predict", strings.NewReader("{}"))
		se := asError(t, err)
		var opErr *net.OpError
		if se.Attempts != maxAttempts || len(rec.all()) != maxAttempts-1 || !errors.As(err, &opErr) || !se.Retryable {
			t.Errorf("err = %v after %d attempts, want the dial error after %d", err, se.Attempts, maxAttempts)
		}
		for _, a := range rec.all() {
			if a.StatusCode != 0 || asError(t, a.Err).Reason != streamguard.ReasonConnection {
				t.Errorf("OnRetry %+v", a)
			}
		}
	})

	t.Run("a failed TLS handshake is retried for POST", func(t *testing.T) {
		l := newClosingListener(t)
		rt := retry.NewTransport(plainTransport(t), fast(retry.Policy{MaxAttempts: maxAttempts}))
		_, err := do(t, rt, "POST", "https://"+l.Addr().String()+"/predict", strings.NewReader("{}"))
		se := asError(t, err)
		if se.Attempts != maxAttempts || l.accepted.Load() != maxAttempts {
			t.Errorf("err = %v after %d attempts, %d connections; want %d", err, se.Attempts, l.accepted.Load(), maxAttempts)
		}
	})

	t.Run("an HTTP/2 GOAWAY before the request was read is retried for POST", func(t *testing.T) {
		srv, tr := newGoAwayServer(t)
		rt := retry.NewTransport(tr, fast(retry.Policy{MaxAttempts: maxAttempts}))
		_, err := do(t, rt, "POST", srv.URL+"/predict", strings.NewReader("{}"))
		se := asError(t, err)
		if se.Attempts != maxAttempts || srv.accepted.Load() != maxAttempts || !strings.Contains(se.Message, "GOAWAY") {
			t.Errorf("err = %v after %d attempts, %d connections; want %d", err, se.Attempts, srv.accepted.Load(), maxAttempts)
		}
	})

	t.Run("an untrusted certificate is not retried", func(t *testing.T) {
		srv, _ := h2Server(t, http.NotFoundHandler())
		rt := retry.NewTransport(plainTransport(t), fast(retry.Policy{MaxAttempts: maxAttempts}))
		_, err := do(t, rt, "GET", srv.URL, nil)
		se := asError(t, err)
		if se.Attempts != 1 || se.Retryable {
			t.Errorf("err = %v after %d attempts, retryable %v; want 1, false", err, se.Attempts, se.Retryable)
		}
	})

	t.Run("an unsupported scheme is not retried", func(t *testing.T) {
		rt := retry.NewTransport(plainTransport(t), fast(retry.Policy{MaxAttempts: maxAttempts}))
		_, err := do(t, rt, "GET", "ftp://127.0.0.1/", nil)
		if se := asError(t, err); se.Attempts != 1 {
			t.Errorf("err = %v after %d attempts", err, se.Attempts)
		}
	})

	t.Run("a failure then a success", func(t *testing.T) {
		var n atomic.Int32
		srv := newPlainServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if n.Add(1) == 1 {
				panic(http.ErrAbortHandler)
			}
			fmt.Fprint(w, "ok")
		}))
		rt := retry.NewTransport(plainTransport(t), fast(retry.Policy{}))
		resp := mustDo(t, rt, "GET", srv.URL)
		if got := readAll(t, resp); string(got) != "ok" || n.Load() != 2 {
			t.Errorf("%q after %d requests", got, n.Load())
		}
		checkNoError(t, resp)
	})
}

func checkNoError(t *testing.T, resp *http.Response) {
	t.Helper()
	if err := streamguard.Check(resp); err != nil {
		t.Error(err)
	}
}
