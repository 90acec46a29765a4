package respwriter_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/streamguard/streamguard/internal/respwriter"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const waitTimeout = 10 * time.Second

// TestRecords: the status (explicit, implicit on Write or Flush, not
// informational), the bytes, and the header's commitment are recorded.
func TestRecords(t *testing.T) {
	cases := []struct {
		name    string
		handler func(w *respwriter.Writer)
		status  int
		written int64
		body    string
	}{
		{"nothing", func(w *respwriter.Writer) {}, 0, 0, ""},
		{"implicit 200", func(w *respwriter.Writer) { w.Write([]byte("hello")) }, 200, 5, "hello"},
		{"explicit 404", func(w *respwriter.Writer) { w.WriteHeader(404); w.Write([]byte("no")) }, 404, 2, "no"},
		{"second status ignored", func(w *respwriter.Writer) { w.WriteHeader(503); w.WriteHeader(200) }, 503, 0, ""},
		{"informational first", func(w *respwriter.Writer) { w.WriteHeader(103); w.WriteHeader(201) }, 201, 0, ""},
		{"flush commits 200", func(w *respwriter.Writer) { w.Flush(); w.WriteHeader(500) }, 200, 0, ""},
		{"write string", func(w *respwriter.Writer) { io.WriteString(w, "data: x\n\n") }, 200, 9, "data: x\n\n"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			w := respwriter.New(rec)
			c.handler(w)
			if w.Status() != c.status || w.WroteHeader() != (c.status != 0) || w.Written() != c.written {
				t.Errorf("status %d wrote %v written %d; want %d %v %d", w.Status(), w.WroteHeader(), w.Written(), c.status, c.status != 0, c.written)
			}
			if rec.Body.String() != c.body {
				t.Errorf("body %q", rec.Body.String())
			}
			if c.written > 0 && w.FirstWrite().IsZero() || c.written == 0 && !w.FirstWrite().IsZero() {
				t.Errorf("first write %v with %d bytes", w.FirstWrite(), c.written)
			}
			if w.Err() != nil || w.Hijacked() {
				t.Errorf("err %v hijacked %v", w.Err(), w.Hijacked())
			}
		})
	}
}

// failingWriter is a ResponseWriter whose writes and flushes fail with the
// errors given, like a connection the client has left.
type failingWriter struct {
	header   http.Header
	writeErr error
	flushErr error
	flushes  int
}

func (f *failingWriter) Header() http.Header {
	if f.header == nil {
		f.header = http.Header{}
	}
	return f.header
}
func (f *failingWriter) WriteHeader(int) {}
func (f *failingWriter) Write(p []byte) (int, error) {
	if f.writeErr != nil {
		return 0, f.writeErr
	}
	return len(p), nil
}
func (f *failingWriter) WriteString(s string) (int, error) {
	if f.writeErr != nil {
		return 0, f.writeErr
	}
	return len(s), nil
}
func (f *failingWriter) FlushError() error { f.flushes++; return f.flushErr }

// TestFlushErrorReturnsRealError: FlushError returns the writer's own
// error, Flush drops it but Err keeps the first one; a write error is kept
// the same way.
func TestFlushErrorReturnsRealError(t *testing.T) {
	broken := errors.New("write tcp: broken pipe")
	fw := &failingWriter{flushErr: broken}
	w := respwriter.New(fw)
	if err := w.FlushError(); err != broken {
		t.Fatalf("FlushError = %v, want the real error", err)
	}
	if !w.WroteHeader() || w.Status() != 200 {
		t.Errorf("a flush commits the header: %v %d", w.WroteHeader(), w.Status())
	}
	fw.flushErr = errors.New("a later error")
	w.Flush()
	if fw.flushes != 2 || w.Err() != broken {
		t.Errorf("flushes %d, Err %v: want the first error kept", fw.flushes, w.Err())
	}
	if err := http.NewResponseController(w).Flush(); err == nil {
		t.Error("ResponseController.Flush through the wrapper dropped the error")
	}

	reset := errors.New("connection reset by peer")
	w = respwriter.New(&failingWriter{writeErr: reset})
	if _, err := w.Write([]byte("x")); err != reset || w.Err() != reset || w.Written() != 0 {
		t.Errorf("write: %v, Err %v, written %d", err, w.Err(), w.Written())
	}
}

// minimalWriter implements nothing beyond http.ResponseWriter.
type minimalWriter struct{ h http.Header }

func (m *minimalWriter) Header() http.Header         { return m.h }
func (m *minimalWriter) WriteHeader(int)             {}
func (m *minimalWriter) Write(p []byte) (int, error) { return len(p), nil }

// TestNotSupported: what the writer beneath cannot do is an error wrapping
// http.ErrNotSupported, not recorded as a failure, and does not commit the
// header.
func TestNotSupported(t *testing.T) {
	w := respwriter.New(&minimalWriter{h: http.Header{}})
	rc := http.NewResponseController(w)
	for name, err := range map[string]error{
		"Flush":            rc.Flush(),
		"SetReadDeadline":  rc.SetReadDeadline(time.Now()),
		"SetWriteDeadline": rc.SetWriteDeadline(time.Now()),
		"EnableFullDuplex": rc.EnableFullDuplex(),
	} {
		if !errors.Is(err, http.ErrNotSupported) {
			t.Errorf("%s: %v, want ErrNotSupported", name, err)
		}
	}
	if _, _, err := rc.Hijack(); !errors.Is(err, http.ErrNotSupported) {
		t.Errorf("Hijack: %v", err)
	}
	w.Flush() // must not panic
	if w.Err() != nil || w.WroteHeader() || w.Hijacked() {
		t.Errorf("err %v wrote %v hijacked %v", w.Err(), w.WroteHeader(), w.Hijacked())
	}
}

// unwrapOnly hides its writer's methods behind Unwrap, as a third-party
// middleware's wrapper does.
type unwrapOnly struct{ http.ResponseWriter }

func (u unwrapOnly) Unwrap() http.ResponseWriter { return u.ResponseWriter }

// TestUnwrapChain: the Writer finds the flusher through wrappers that only
// Unwrap, and a ResponseController on a wrapper of the Writer reaches it.
func TestUnwrapChain(t *testing.T) {
	broken := errors.New("stream closed")
	w := respwriter.New(unwrapOnly{unwrapOnly{&failingWriter{flushErr: broken}}})
	if err := w.FlushError(); err != broken {
		t.Errorf("FlushError through two Unwraps: %v", err)
	}
	if err := http.NewResponseController(unwrapOnly{w}).Flush(); err != broken {
		t.Errorf("ResponseController over a wrapper of the Writer: %v", err)
	}
	if w.Unwrap() == nil {
		t.Error("Unwrap returned nil")
	}
}

func newServer(t *testing.T, h http.Handler, tls bool) *httptest.Server {
	t.Helper()
	srv := httptest.NewUnstartedServer(h)
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	if tls {
		srv.EnableHTTP2 = true
		srv.StartTLS()
	} else {
		srv.Start()
	}
	t.Cleanup(srv.Close)
	return srv
}

// TestResponseController: over real HTTP/1.1 and HTTP/2 connections,
// http.ResponseController works through the Writer: Flush, both deadlines,
// EnableFullDuplex, and Hijack on HTTP/1 (HTTP/2 answers ErrNotSupported, as
// it does without the wrapper).
func TestResponseController(t *testing.T) {
	for _, tls := range []bool{false, true} {
		name := "http1"
		if tls {
			name = "http2"
		}
		t.Run(name, func(t *testing.T) {
			type result struct {
				errs     map[string]error
				hijacked bool
			}
			results := make(chan result, 1)
			srv := newServer(t, http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
				w := respwriter.New(rw)
				rc := http.NewResponseController(w)
				errs := map[string]error{
					"SetReadDeadline":  rc.SetReadDeadline(time.Now().Add(time.Minute)),
					"SetWriteDeadline": rc.SetWriteDeadline(time.Now().Add(time.Minute)),
					"EnableFullDuplex": rc.EnableFullDuplex(),
				}
				if r.URL.Path == "/hijack" {
					var conn net.Conn
					var buf *bufio.ReadWriter
					conn, buf, errs["Hijack"] = rc.Hijack()
					if conn != nil {
						buf.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 8\r\nConnection: close\r\n\r\nhijacked")
						buf.Flush()
						conn.Close()
					}
				} else {
					io.WriteString(w, "data: x\n\n")
					errs["Flush"] = rc.Flush()
				}
				results <- result{errs, w.Hijacked()}
			}), tls)
			for _, path := range []string{"/flush", "/hijack"} {
				resp, err := srv.Client().Get(srv.URL + path)
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				var res result
				select {
				case res = <-results:
				case <-time.After(waitTimeout):
					t.Fatal("no result")
				}
				for m, err := range res.errs {
					if m == "Hijack" && tls {
						if !errors.Is(err, http.ErrNotSupported) {
							t.Errorf("Hijack over HTTP/2: %v", err)
						}
						continue
					}
					if err != nil {
						t.Errorf("%s %s: %v", path, m, err)
					}
				}
				if path == "/hijack" && !tls && (string(body) != "hijacked" || !res.hijacked) {
					t.Errorf("hijack: body %q, Hijacked() %v", body, res.hijacked)
				}
				if path == "/flush" && string(body) != "data: x\n\n" {
					t.Errorf("body %q", body)
				}
			}
		})
	}
}

// TestFlushErrorAfterClientLeaves: on a real connection the client has left,
// a write or FlushError returns the connection's error, and Err records it.
func TestFlushErrorAfterClientLeaves(t *testing.T) {
	for _, tls := range []bool{false, true} {
		name := "http1"
		if tls {
			name = "http2"
		}
		t.Run(name, func(t *testing.T) {
			type result struct{ returned, recorded error }
			results := make(chan result, 1)
			srv := newServer(t, http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
				w := respwriter.New(rw)
				io.WriteString(w, "data: first\n\n")
				w.FlushError()
				<-r.Context().Done() // the client left
				var err error
				for i := 0; i < 10000 && err == nil; i++ {
					if _, err = io.WriteString(w, "data: more\n\n"); err == nil {
						err = w.FlushError()
					}
				}
				results <- result{err, w.Err()}
			}), tls)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL, nil)
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Read(make([]byte, 4))
			cancel()
			resp.Body.Close()
			select {
			case res := <-results:
				if res.returned == nil || errors.Is(res.returned, http.ErrNotSupported) || res.recorded != res.returned {
					t.Errorf("returned %v, recorded %v: want the connection's error, recorded", res.returned, res.recorded)
				}
			case <-time.After(waitTimeout):
				t.Fatal("the handler never saw the client leave")
			}
		})
	}
}

// TestConcurrentReads: the recording accessors may be read while the
// handler writes (run with -race).
func TestConcurrentReads(t *testing.T) {
	w := respwriter.New(&failingWriter{})
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-done:
				return
			default:
			}
			_ = w.Status() + int(w.Written())
			_, _ = w.Err(), w.FirstWrite()
			if i > 1e6 {
				return
			}
		}
	})
	for range 1000 {
		w.Write([]byte("data: x\n\n"))
		w.Flush()
	}
	close(done)
	wg.Wait()
	if w.Written() != 9000 {
		t.Errorf("written %d", w.Written())
	}
}

// TestNoAllocations: a write and a flush through the Writer allocate
// nothing, so that it costs nothing per event of a stream. (WriteString
// copies only when the writer beneath lacks io.StringWriter; net/http's has
// it.)
func TestNoAllocations(t *testing.T) {
	w := respwriter.New(&failingWriter{})
	p := []byte("data: x\n\n")
	allocs := testing.AllocsPerRun(1000, func() {
		w.Write(p)
		w.WriteString("data: y\n\n")
		w.FlushError()
	})
	if allocs != 0 {
		t.Errorf("%v allocations per event", allocs)
	}
}
