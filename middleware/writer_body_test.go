package middleware_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/streamguard/streamguard"
	"github.com/streamguard/streamguard/middleware"
)

// The writer's own bytes (heartbeats, failure frames) go only into a body
// it can frame: not into a content-encoded one, not past a declared
// Content-Length, not into a response that has no body.

const beat = 5 * time.Millisecond

// idle waits many heartbeat periods: before the fixes a heartbeat was
// written here. Real sockets keep this on the wall clock; a slow machine
// only gives the heartbeat more time to misbehave, never a false failure.
func idle() { time.Sleep(20 * beat) }

// A gzip-encoded event stream gets no heartbeat and no failure frame in
// plain text among its compressed bytes: its failure aborts it. The handler
// is a relay that passes an upstream's compressed bytes on as they come: a
// piece that ends in two LFs (here inside a stored block) looked, to the
// writer, like the end of an event.
func TestEncodedStreamNotFramed(t *testing.T) {
	var buf bytes.Buffer
	gz, _ := gzip.NewWriterLevel(&buf, gzip.NoCompression)
	io.WriteString(gz, "data: one\n\ndata: two\n\n")
	gz.Close()
	compressed := buf.Bytes()
	cut := bytes.Index(compressed, []byte("\n\n")) + 2
	protocols(t, func(t *testing.T, h2 bool) {
		srv := serve(t, h2, middleware.ServerConfig{Heartbeat: beat}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/event-stream")
			w.Header().Set("Content-Encoding", "gzip")
			writeFlush(w, string(compressed[:cut]))
			idle()
			middleware.WriteError(w, r, &streamguard.Error{Source: streamguard.SourceModel, Reason: streamguard.ReasonModelError, Message: "boom"})
		}))
		req, _ := http.NewRequest("GET", srv.URL, nil)
		req.Header.Set("Accept-Encoding", "gzip") // asked for: the transport leaves the body as it came
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, rerr := io.ReadAll(resp.Body)
		if !bytes.Equal(raw, compressed[:cut]) {
			t.Fatalf("the gzip body is %q, want the handler's bytes %q", raw, compressed[:cut])
		}
		if rerr == nil {
			t.Fatalf("the failed response ended cleanly: it must be aborted")
		}
	})
}

// An event stream with a Content-Length gets no heartbeat: it would take
// the place of the handler's declared bytes. Its body is the handler's.
func TestContentLengthStreamNoHeartbeat(t *testing.T) {
	protocols(t, func(t *testing.T, h2 bool) {
		const body = "data: one\n\ndata: two\n\n"
		handlerSaw := make(chan string, 1)
		srv := serve(t, h2, middleware.ServerConfig{Heartbeat: beat}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/event-stream")
			w.Header().Set("Content-Length", strconv.Itoa(len(body)))
			writeFlush(w, body[:11])
			idle()
			_, err := io.WriteString(w, body[11:])
			handlerSaw <- fmt.Sprintf("write: %v, context: %v", err, context.Cause(r.Context()))
		}))
		_, b, err := rawGet(t, srv, "/")
		if err != nil || string(b) != body {
			t.Errorf("body %q, %v; want the handler's %q", b, err, body)
		}
		if got := <-handlerSaw; got != "write: <nil>, context: <nil>" {
			t.Fatalf("the handler's last write: %s", got)
		}
	})
}

// A handler that writes more than the Content-Length it declared gets the
// error, and its context goes on: the client did not go away.
func TestContentLengthOverrunNotClientGone(t *testing.T) {
	protocols(t, func(t *testing.T, h2 bool) {
		handlerSaw := make(chan error, 2)
		srv := serve(t, h2, middleware.ServerConfig{}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/event-stream")
			w.Header().Set("Content-Length", "4")
			writeFlush(w, "data")
			_, err := io.WriteString(w, ": too long\n\n")
			handlerSaw <- err
			handlerSaw <- context.Cause(r.Context())
		}))
		rawGet(t, srv, "/")
		if err := <-handlerSaw; err == nil {
			t.Fatal("the write past the Content-Length succeeded")
		}
		if cause := <-handlerSaw; cause != nil {
			t.Fatalf("the handler's context ended (%v): the client is still there", cause)
		}
	})
}

// A 204 or 304 event stream, or one answering HEAD, has no body: no
// heartbeat is written into it, which net/http refused, and the refusal
// ended the handler's context as though the client had gone.
func TestNoBodyNoHeartbeat(t *testing.T) {
	for _, tc := range []struct {
		method string
		status int
	}{{"GET", http.StatusNoContent}, {"GET", http.StatusNotModified}, {"HEAD", http.StatusOK}} {
		protocols(t, func(t *testing.T, h2 bool) {
			t.Run(fmt.Sprint(tc.method, tc.status), func(t *testing.T) {
				type saw struct {
					cause error
					wrote int64 // body bytes the writer sent
				}
				handlerSaw := make(chan saw, 1)
				srv := serve(t, h2, middleware.ServerConfig{Heartbeat: beat}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					w.Header().Set("Content-Type", "text/event-stream")
					w.WriteHeader(tc.status)
					http.NewResponseController(w).Flush()
					idle()
					s := saw{cause: context.Cause(r.Context())}
					if rec, ok := w.(interface{ Written() int64 }); ok {
						s.wrote = rec.Written()
					}
					handlerSaw <- s
				}))
				req, _ := http.NewRequest(tc.method, srv.URL, nil)
				resp, err := srv.Client().Do(req)
				if err != nil {
					t.Fatal(err)
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				s := <-handlerSaw
				if tc.method == "HEAD" {
					s.cause = nil // HTTP/2 ends a HEAD's stream with its header, and its context
				}
				if s.cause != nil || s.wrote != 0 || len(b) != 0 {
					t.Fatalf("context %v, %d bytes written, body %q", s.cause, s.wrote, b)
				}
			})
		})
	}
}

// TestWholeResponseNotAborted: a failure (the budget's expiry) after a
// response that is already whole, one without a body (a HEAD's answer, a
// 204) or with all of its declared length, ends it as it is: an abort
// lost it (the client got no answer at all, or a cut one).
func TestWholeResponseNotAborted(t *testing.T) {
	cases := []struct {
		name, method string
		status       int
		write        func(w http.ResponseWriter)
		body         string
	}{
		{"HEAD of an event stream", http.MethodHead, 200, func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "text/event-stream")
			w.WriteHeader(200)
		}, ""},
		{"204", http.MethodGet, 204, func(w http.ResponseWriter) { w.WriteHeader(204) }, ""},
		{"all its Content-Length", http.MethodGet, 200, func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Content-Length", "11")
			io.WriteString(w, `{"ok":true}`)
			w.(http.Flusher).Flush()
		}, `{"ok":true}`},
	}
	for _, c := range cases {
		protocols(t, func(t *testing.T, h2 bool) {
			h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				c.write(w)
				<-r.Context().Done()
			})
			srv := serve(t, h2, middleware.ServerConfig{Budget: 50 * time.Millisecond}, h)
			req, _ := http.NewRequest(c.method, srv.URL, nil)
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatalf("%s: %v", c.name, err)
			}
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil || resp.StatusCode != c.status || string(b) != c.body {
				t.Errorf("%s: %d %q, %v; want %d %q", c.name, resp.StatusCode, b, err, c.status, c.body)
			}
		})
	}
}
