package middleware_test

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/streamguard/streamguard/middleware"
	"github.com/streamguard/streamguard/resume"
	"github.com/streamguard/streamguard/sse"
)

// A goroutine the handler left behind that sets the status, writes,
// flushes or sets a deadline once the handler has returned gets an error and reaches nothing:
// net/http's writer is no longer the handler's (on HTTP/2 a Write after the
// server's handler returned panics, on HTTP/1 it races with the
// connection's next response).
func TestWriteAfterHandlerReturned(t *testing.T) {
	protocols(t, func(t *testing.T, h2 bool) {
		returned := make(chan struct{})
		late := make(chan string, 1)
		inner := func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/event-stream")
			io.WriteString(w, "data: one\n\n")
			go func() {
				defer func() {
					if p := recover(); p != nil {
						late <- fmt.Sprintf("panic: %v", p)
					}
				}()
				<-returned
				w.WriteHeader(http.StatusTeapot)
				_, werr := io.WriteString(w, "data: late\n\n")
				rc := http.NewResponseController(w)
				ferr := rc.Flush()
				derr := []error{rc.SetWriteDeadline(time.Now().Add(time.Minute)), rc.SetReadDeadline(time.Now().Add(time.Minute)), rc.EnableFullDuplex()}
				late <- fmt.Sprintf("write: %v, flush: %v, deadlines: %v", werr, ferr, derr)
			}()
		}
		var got string
		srv := serveLayer(t, h2, func(next http.Handler) http.Handler {
			h := middleware.NewHandler(next, middleware.ServerConfig{})
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				h.ServeHTTP(w, r)
				close(returned)
				got = <-late // before net/http finishes the response: no panic, no race of its own
			})
		}, inner)
		resp, b, err := rawGet(t, srv, "/")
		if err != nil || resp.StatusCode != http.StatusOK || string(b) != "data: one\n\n" {
			t.Errorf("got %d %q, %v; want 200 and the handler's one event", resp.StatusCode, b, err)
		}
		want := fmt.Sprintf("write: %v, flush: %v, deadlines: %v", http.ErrHandlerTimeout, http.ErrHandlerTimeout,
			[]error{http.ErrHandlerTimeout, http.ErrHandlerTimeout, http.ErrHandlerTimeout})
		if got != want {
			t.Fatalf("the late writes got %q, want %q", got, want)
		}
	})
}

// TestResumeWriteAfterHandlerReturned: with Resume on too, a goroutine the
// handler left behind gets http.ErrHandlerTimeout from a write and a flush
// once the handler returned (a write reported success, its bytes going
// nowhere).
func TestResumeWriteAfterHandlerReturned(t *testing.T) {
	returned := make(chan struct{})
	late := make(chan string, 1)
	h := middleware.NewHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "data: one\n\n")
		w.(http.Flusher).Flush()
		go func() {
			<-returned
			_, werr := io.WriteString(w, "data: late\n\n")
			ferr := http.NewResponseController(w).Flush()
			late <- fmt.Sprintf("write: %v, flush: %v", werr, ferr)
		}()
	}), middleware.ServerConfig{Resume: &middleware.ResumeConfig{Store: resume.NewMemoryStore(resume.MemoryConfig{}), Linger: time.Second}})
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	close(returned)
	select {
	case got := <-late:
		if want := fmt.Sprintf("write: %v, flush: %v", http.ErrHandlerTimeout, http.ErrHandlerTimeout); got != want {
			t.Fatalf("late writes got %q, want %q", got, want)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the late goroutine never wrote")
	}
}

// TestResumeHEADNotResumable: the answer to a HEAD is no resumable stream
// (it has no body to take id lines or a failure event): a handler's
// failure after its header was stored as a clean end, and a resume got a
// stream that looked complete.
func TestResumeHEADNotResumable(t *testing.T) {
	h := middleware.NewHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "data: 1\n\n")
		w.(http.Flusher).Flush()
		middleware.WriteError(w, r, fmt.Errorf("the model crashed"))
	}), middleware.ServerConfig{Resume: &middleware.ResumeConfig{Store: resume.NewMemoryStore(resume.MemoryConfig{}), Linger: time.Second}})
	srv := httptest.NewServer(h)
	defer srv.Close()
	resp, err := http.Head(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if name := resp.Header.Get(sse.ResumableStreamHeader); name != "" {
		t.Fatalf("a HEAD's answer is resumable as %q", name)
	}
	// A GET is, and its failure is stored.
	resp, err = http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.Header.Get(sse.ResumableStreamHeader) == "" || !bytes.Contains(body, []byte("event: error")) {
		t.Fatalf("a GET: %q (Resumable-Stream %q)", body, resp.Header.Get(sse.ResumableStreamHeader))
	}
}

// TestHeaderWithoutWrite: the fields a handler sets before returning
// without a write go out with net/http's implicit 200, as they do without
// NewHandler.
func TestHeaderWithoutWrite(t *testing.T) {
	h := middleware.NewHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Request-Id", "abc")
		w.Header().Set("Location", "/elsewhere")
	}), middleware.ServerConfig{})
	for _, major := range []int{1, 2} {
		srv := httptest.NewUnstartedServer(h)
		srv.EnableHTTP2 = major == 2
		srv.StartTLS()
		resp, err := srv.Client().Get(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		srv.Close()
		if resp.ProtoMajor != major || resp.StatusCode != 200 || resp.Header.Get("X-Request-Id") != "abc" || resp.Header.Get("Location") != "/elsewhere" {
			t.Errorf("HTTP/%d: %s %d, header %v", major, resp.Proto, resp.StatusCode, resp.Header)
		}
	}
}

// TestResumableHEADAlone: Resumable used without NewHandler (which tells
// it the request is a HEAD) passes a HEAD to the handler as it is: no
// stream reserved, no Resumable-Stream header.
func TestResumableHEADAlone(t *testing.T) {
	store := resume.NewMemoryStore(resume.MemoryConfig{})
	var served atomic.Int32
	h := middleware.Resumable(middleware.ServerConfig{Resume: &middleware.ResumeConfig{Store: store, Linger: time.Second}})(
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			served.Add(1)
			w.Header().Set("Content-Type", "text/event-stream")
			io.WriteString(w, "data: 1\n\n")
		}))
	srv := httptest.NewServer(h)
	defer srv.Close()
	resp, err := http.Head(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get(sse.ResumableStreamHeader) != "" {
		t.Errorf("HEAD: %d, Resumable-Stream %q; want 200 and none", resp.StatusCode, resp.Header.Get(sse.ResumableStreamHeader))
	}
	if n, _ := store.Len(); n != 0 || served.Load() != 1 {
		t.Errorf("%d streams in the store, the handler served %d HEADs; want 0 and 1", n, served.Load())
	}
}

// TestResumeHijackFreesSlot: a hijacked request (a WebSocket) gives its
// stream's reservation back: with the beats from the stream's creation, a
// connection held for long kept a slot of the store, and a full store
// answered the next stream 503.
func TestResumeHijackFreesSlot(t *testing.T) {
	store := resume.NewMemoryStore(resume.MemoryConfig{MaxStreams: 1})
	release := make(chan struct{})
	defer close(release)
	h := middleware.NewHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/ws" {
			c, _, err := http.NewResponseController(w).Hijack()
			if err != nil {
				t.Error(err)
				return
			}
			defer c.Close()
			io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
			<-release
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "data: hi\n\n")
	}), middleware.ServerConfig{Resume: &middleware.ResumeConfig{Store: store, Linger: time.Second}})
	srv := httptest.NewServer(h)
	defer srv.Close()
	ws, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	io.WriteString(ws, "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
	if resp, err := http.ReadResponse(bufio.NewReader(ws), nil); err != nil || resp.StatusCode != 101 {
		t.Fatalf("the upgrade: %v", err)
	}
	resp, err := http.Get(srv.URL + "/sse")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("a stream while a hijacked connection is held: %d %s, want 200", resp.StatusCode, b)
	}
}

// TestDeadlineUnblocksWrite: a write deadline set from another goroutine
// ends a write stuck on a client that stopped reading (the deadline waited
// for the lock the stuck write held).
func TestDeadlineUnblocksWrite(t *testing.T) {
	setDL := make(chan time.Duration, 1)
	wrote := make(chan error, 1)
	h := middleware.NewHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		go func() {
			time.Sleep(300 * time.Millisecond)
			start := time.Now()
			rc.SetWriteDeadline(time.Now())
			setDL <- time.Since(start)
		}()
		buf := make([]byte, 1<<20)
		for range 256 {
			if _, err := w.Write(buf); err != nil {
				wrote <- err
				return
			}
		}
		wrote <- nil
	}), middleware.ServerConfig{})
	srv := httptest.NewServer(h)
	defer srv.Close()
	c, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n") // and never read
	select {
	case d := <-setDL:
		if err := <-wrote; err == nil {
			t.Errorf("the write went on past its deadline")
		}
		t.Logf("SetWriteDeadline took %v", d)
	case <-time.After(5 * time.Second):
		t.Fatal("SetWriteDeadline waited for the stuck write")
	}
}

// deadlineRecorder is a ResponseWriter whose SetWriteDeadline, for mark,
// says it began and then takes its time, as a slow call may; it records
// whether it was still running when ServeHTTP had returned.
type deadlineRecorder struct {
	*httptest.ResponseRecorder
	mark        time.Time
	entered     chan struct{}
	returned    chan struct{}
	afterReturn atomic.Bool
}

func (d *deadlineRecorder) SetWriteDeadline(t time.Time) error {
	if !t.Equal(d.mark) {
		return nil
	}
	close(d.entered)
	select {
	case <-d.returned:
		d.afterReturn.Store(true)
	case <-time.After(300 * time.Millisecond):
	}
	return nil
}

// TestDeadlineNotAfterReturn: a deadline set by a goroutine of the handler
// as the handler returns reaches net/http's writer before ServeHTTP
// returns, never after (net/http's HTTP/2 writer panics then).
func TestDeadlineNotAfterReturn(t *testing.T) {
	d := &deadlineRecorder{ResponseRecorder: httptest.NewRecorder(), mark: time.Unix(12345, 0),
		entered: make(chan struct{}), returned: make(chan struct{})}
	done := make(chan struct{})
	h := middleware.NewHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		go func() {
			defer close(done)
			http.NewResponseController(w).SetWriteDeadline(d.mark)
		}()
		<-d.entered // the goroutine is in the call as the handler returns
	}), middleware.ServerConfig{})
	h.ServeHTTP(d, httptest.NewRequest(http.MethodGet, "/", nil))
	close(d.returned)
	<-done
	if d.afterReturn.Load() {
		t.Fatal("net/http's SetWriteDeadline ran on after ServeHTTP returned")
	}
}
