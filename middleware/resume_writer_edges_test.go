package middleware_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"net/textproto"
	"strings"
	"testing"
	"time"

	"github.com/streamguard/streamguard/middleware"
	"github.com/streamguard/streamguard/resume"
	"github.com/streamguard/streamguard/sse"
)

// resumeOn is a ServerConfig with resume on, in memory.
func resumeOn() middleware.ServerConfig {
	return middleware.ServerConfig{Resume: &middleware.ResumeConfig{}}
}

// TestResumableFlushCREvent: an event ended by a lone CR is sent (and
// stored) at the Flush after it, as the client dispatches it at the CR, not
// held until the handler writes again to see whether an LF follows.
func TestResumableFlushCREvent(t *testing.T) {
	rec := httptest.NewRecorder()
	var sent string
	h := middleware.NewHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "data: 1\r\r")
		w.(http.Flusher).Flush()
		sent = rec.Body.String() // what the client has before the next write
		io.WriteString(w, "\ndata: 2\r\r")
	}), resumeOn())
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	name := rec.Header().Get(sse.ResumableStreamHeader)
	if want := "data: 1\rid: " + name + ".1\n\r"; sent != want {
		t.Fatalf("sent at the flush %q, want %q", sent, want)
	}
	// The LF that came next ends an empty line of its own: no event.
	if want := "data: 1\rid: " + name + ".1\n\r\ndata: 2\rid: " + name + ".2\n\r"; rec.Body.String() != want {
		t.Fatalf("sent %q, want %q", rec.Body.String(), want)
	}
}

// TestResumableCommentsSent: blocks without data (comments, retry fields)
// written without a Flush go out every 64 KiB, as events do, instead of
// piling up until the next event or Flush.
func TestResumableCommentsSent(t *testing.T) {
	rec := httptest.NewRecorder()
	var sent int
	comment := ": " + strings.Repeat("x", 1024) + "\n\n"
	h := middleware.NewHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		for range 1024 { // 1 MiB of comments, no Flush
			io.WriteString(w, comment)
		}
		sent = rec.Body.Len()
	}), resumeOn())
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	if total := 1024 * len(comment); sent < total-(64<<10) {
		t.Fatalf("%d of %d bytes of comments sent before the handler returned", sent, total)
	}
}

// TestResumableEarlyHints: a 1xx before the final status passes through
// (with the fields the handler set for it), and the final status is the
// one the handler writes next, with resume on and off.
func TestResumableEarlyHints(t *testing.T) {
	for _, cfg := range []middleware.ServerConfig{{}, resumeOn()} {
		srv := httptest.NewServer(middleware.NewHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Link", "</a.css>; rel=preload")
			w.WriteHeader(http.StatusEarlyHints)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusNotFound)
		}), cfg))
		var link string
		ctx := httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{
			Got1xxResponse: func(_ int, h textproto.MIMEHeader) error { link = h.Get("Link"); return nil }})
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL, nil)
		resp, err := srv.Client().Do(req)
		srv.Close()
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound || link == "" {
			t.Errorf("resume %v: status %d, the 103's Link %q; want 404 and the Link", cfg.Resume != nil, resp.StatusCode, link)
		}
	}
}

// TestResumableHijack: with resume on, the handler's writer is still an
// http.Hijacker, as NewHandler's doc says (WebSocket libraries look for
// one), and a hijacked response leaves no stream in the store.
func TestResumableHijack(t *testing.T) {
	store := resume.NewMemoryStore(resume.MemoryConfig{})
	done := make(chan struct{})
	srv := httptest.NewServer(middleware.NewHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer close(done)
		hj, ok := w.(http.Hijacker)
		if !ok {
			t.Error("the handler's writer is no http.Hijacker")
			return
		}
		conn, buf, err := hj.Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		buf.WriteString("HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n")
		buf.Flush()
		conn.Close()
	}), middleware.ServerConfig{Resume: &middleware.ResumeConfig{Store: store}}))
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	<-done
	if resp.StatusCode != http.StatusNoContent {
		t.Errorf("status %d, want the hijacker's 204", resp.StatusCode)
	}
	// The stream is forgotten once the handler's layers return, after it.
	n, _ := store.Len()
	for i := 0; i < 200 && n != 0; i++ {
		time.Sleep(10 * time.Millisecond)
		n, _ = store.Len()
	}
	if n != 0 {
		t.Errorf("the store holds %d streams after a hijacked response", n)
	}
}
