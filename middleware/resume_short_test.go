package middleware_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/streamguard/streamguard/middleware"
	"github.com/streamguard/streamguard/resume"
	"github.com/streamguard/streamguard/sse"
	gosse "github.com/tmaxmax/go-sse"
)

// shortEnd checks that a resume's body is the events after from up to
// last ("data: {seq}", each with its id), then a truncated failure event
// without an id: the stream broke off, and the store says so.
func shortEnd(t *testing.T, body, name string, from, last int) {
	t.Helper()
	var want string
	for seq := from + 1; seq <= last; seq++ {
		want += fmt.Sprintf("data: %d\nid: %s.%d\n\n", seq, name, seq)
	}
	rest, ok := strings.CutPrefix(body, want)
	if !ok || !strings.Contains(rest, `"reason":"truncated"`) || !strings.HasSuffix(rest, "\nevent: error\n\n") || strings.Contains(rest, "id:") {
		t.Fatalf("the resume got %q, want %q and then a truncated failure event without an id", body, want)
	}
}

// TestResumableAbortEndsShort: a handler that aborts its stream
// (panic(http.ErrAbortHandler), as httputil.ReverseProxy does when its
// upstream breaks), or panics under Resumable alone, leaves a stream that
// ended short: a resume gets the events stored, then a truncated failure
// event, not a clean end.
func TestResumableAbortEndsShort(t *testing.T) {
	for _, tc := range []struct {
		name  string
		panic any
		stack func(http.Handler, middleware.ServerConfig) http.Handler
	}{
		{"abort in NewHandler", http.ErrAbortHandler, middleware.NewHandler},
		{"panic under Resumable alone", "boom", func(h http.Handler, cfg middleware.ServerConfig) http.Handler { return middleware.Resumable(cfg)(h) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/event-stream")
				for i := 1; i <= 3; i++ {
					fmt.Fprintf(w, "data: %d\n\n", i)
					w.(http.Flusher).Flush()
				}
				panic(tc.panic)
			})
			cfg := middleware.ServerConfig{Resume: &middleware.ResumeConfig{Store: resume.NewMemoryStore(resume.MemoryConfig{})}}
			srv := httptest.NewUnstartedServer(tc.stack(h, cfg))
			srv.Config.ErrorLog = log.New(io.Discard, "", 0)
			srv.Start()
			defer srv.Close()
			resp, err := http.Get(srv.URL)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body) // cut after event 3
			resp.Body.Close()
			name := resp.Header.Get(sse.ResumableStreamHeader)
			req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
			req.Header.Set(sse.LastEventIDHeader, name+".1")
			resumed, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, err := io.ReadAll(resumed.Body)
			resumed.Body.Close()
			if err != nil {
				t.Fatal(err)
			}
			shortEnd(t, string(body), name, 1, 3)
		})
	}
}

// TestResumableLingerEndsShort: a handler whose work the linger cancels
// (no client came back), and which then returns without writing a
// failure of its own, leaves a stream that ended short; and a store that
// fails once while the linger runs does not cut the linger short.
func TestResumableLingerEndsShort(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const linger = 2 * time.Second
		store := &flakyInfo{Store: resume.NewMemoryStore(resume.MemoryConfig{})}
		var canceledAt time.Time
		h := middleware.NewHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/event-stream")
			for i := 1; i <= 2; i++ {
				fmt.Fprintf(w, "data: %d\n\n", i)
				w.(http.Flusher).Flush()
			}
			<-r.Context().Done()
			canceledAt = time.Now()
		}), middleware.ServerConfig{Resume: &middleware.ResumeConfig{Store: store, Linger: linger}})
		ctx, leave := context.WithCancel(context.Background())
		rec := httptest.NewRecorder()
		done := make(chan struct{})
		go func() {
			defer close(done)
			h.ServeHTTP(rec, httptest.NewRequestWithContext(ctx, http.MethodGet, "/", nil))
		}()
		synctest.Wait()
		left := time.Now()
		store.fail.Store(true) // the next Info fails: no news, not the end
		leave()
		<-done
		if waited := canceledAt.Sub(left); waited < linger {
			t.Fatalf("the work was canceled %v after the client left, before its linger, %v", waited, linger)
		}
		name := rec.Header().Get(sse.ResumableStreamHeader)
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		req.Header.Set(sse.LastEventIDHeader, name+".1")
		resumed := httptest.NewRecorder()
		h.ServeHTTP(resumed, req)
		shortEnd(t, resumed.Body.String(), name, 1, 2)
	})
}

// flakyInfo is a store whose Info fails once when fail is set.
type flakyInfo struct {
	resume.Store
	fail atomic.Bool
}

func (s *flakyInfo) Info(ctx context.Context, stream string) (resume.Info, error) {
	if s.fail.Swap(false) {
		return resume.Info{}, errors.New("redis: i/o timeout")
	}
	return s.Store.Info(ctx, stream)
}

// TestResumeHeaderAtOnce: a resume at the live edge of a quiet stream gets
// its response header at once, not with the next event.
func TestResumeHeaderAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := resume.NewMemoryStore(resume.MemoryConfig{})
		h := middleware.NewHandler(http.NotFoundHandler(), middleware.ServerConfig{Resume: &middleware.ResumeConfig{Store: store, Linger: time.Minute}})
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		name := storedStream(t, store, req)
		req.Header.Set(sse.LastEventIDHeader, name+".3")
		req.Header.Set(middleware.TimeoutHeader, "10000")
		rec := &flushRW{ResponseRecorder: httptest.NewRecorder(), flushed: make(chan struct{}, 1)}
		done := make(chan struct{})
		go func() {
			defer close(done)
			h.ServeHTTP(rec, req)
		}()
		synctest.Wait()
		select {
		case <-rec.flushed:
		default:
			t.Error("the resume waits for the next event without its header out")
		}
		<-done
	})
}

// flushRW is a ResponseRecorder that says when it is first flushed.
type flushRW struct {
	*httptest.ResponseRecorder
	flushed chan struct{}
}

func (f *flushRW) Flush() {
	f.ResponseRecorder.Flush()
	select {
	case f.flushed <- struct{}{}:
	default:
	}
}

// TestResumableEventTooLarge: a handler that writes an event past 8 MiB
// without its end gets a write error, and the stream ends with an
// event_too_large failure event, stored, instead of the writer holding
// the bytes without bound.
func TestResumableEventTooLarge(t *testing.T) {
	var werr atomic.Value
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "data: 1\n\ndata: ")
		chunk := strings.Repeat("x", 64<<10)
		for range 200 { // 12.5 MiB at most
			if _, err := io.WriteString(w, chunk); err != nil {
				werr.Store(err)
				middleware.WriteError(w, r, err) // as a handler does: no second failure event
				return
			}
		}
	})
	store := resume.NewMemoryStore(resume.MemoryConfig{})
	rec := httptest.NewRecorder()
	middleware.NewHandler(h, middleware.ServerConfig{Resume: &middleware.ResumeConfig{Store: store}}).
		ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	if werr.Load() == nil {
		t.Fatal("the handler's writes past 8 MiB did not fail")
	}
	name := rec.Header().Get(sse.ResumableStreamHeader)
	body := rec.Body.String()
	if want := "data: 1\nid: " + name + ".1\n\n"; !strings.HasPrefix(body, want) || len(body) > 4096 ||
		!strings.Contains(body, `"reason":"event_too_large"`) || !strings.HasSuffix(body, "id: "+name+".2\n\n") ||
		strings.Count(body, "event: error") != 1 {
		t.Fatalf("the stream is %d bytes: %.300q", len(body), body)
	}
	if info, err := store.Info(context.Background(), name); err != nil || info.Last != 2 || !info.Ended {
		t.Fatalf("stored %+v, %v; want event 1 and the failure", info, err)
	}
}

// TestResumableSilentClient: a client that stops reading without closing
// its connection (half-open: the socket's buffers fill, and writes block)
// counts as gone a linger later, so the handler goes on and its events
// are stored: a resume at another connection gets the whole stream, not
// the events up to the blocked write and then a wait until the budget.
func TestResumableSilentClient(t *testing.T) {
	const events, size = 2000, 16 << 10 // 32 MiB: more than loopback's buffers hold
	payload := strings.Repeat("x", size)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		for i := 1; i <= events; i++ {
			fmt.Fprintf(w, "data: %d %s\n\n", i, payload)
			w.(http.Flusher).Flush()
		}
	})
	srv := httptest.NewServer(middleware.NewHandler(h, middleware.ServerConfig{
		// A linger of a second, not less: the resume's reader, this test,
		// must not read nothing for a linger (it would be a client gone
		// too), however loaded the machine running it.
		Resume: &middleware.ResumeConfig{Store: resume.NewMemoryStore(resume.MemoryConfig{}), Linger: time.Second}}))
	defer srv.Close()
	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	io.WriteString(conn, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	name := resp.Header.Get(sse.ResumableStreamHeader) // and then the client reads no more
	req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
	req.Header.Set(sse.LastEventIDHeader, name+".0")
	resumed, err := (&http.Client{Timeout: 20 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resumed.Body.Close()
	n := 0
	for ev, err := range gosse.Read(resumed.Body, &gosse.ReadConfig{MaxEventSize: 2 * size}) {
		if err != nil {
			t.Fatalf("the resume, after %d events: %v", n, err)
		}
		if n++; !strings.HasPrefix(ev.Data, fmt.Sprint(n, " ")) {
			t.Fatalf("event %d is %.20q", n, ev.Data)
		}
	}
	if n != events {
		t.Fatalf("the resume got %d events, want %d", n, events)
	}
}

// TestRelayLingerEndsTruncated: a Relay whose work the linger canceled (no
// client came back) fails its upstream read with the cancellation: a resume
// after that learns the stream was cut short on the server (truncated,
// platform), not that the model failed.
func TestRelayLingerEndsTruncated(t *testing.T) {
	model := &slowModel{tick: 10 * time.Millisecond, canceled: make(chan error, 1)}
	up := httptest.NewServer(model)
	defer up.Close()
	u, _ := url.Parse(up.URL)
	store := resume.NewMemoryStore(resume.MemoryConfig{})
	srv := httptest.NewServer(middleware.NewHandler(middleware.Relay(u, up.Client()),
		middleware.ServerConfig{Resume: &middleware.ResumeConfig{Store: store, Linger: 200 * time.Millisecond}}))
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	name := resp.Header.Get(sse.ResumableStreamHeader)
	io.ReadFull(resp.Body, make([]byte, 64))
	resp.Body.Close()
	srv.CloseClientConnections()
	select {
	case <-model.canceled:
	case <-time.After(10 * time.Second):
		t.Fatal("the upstream work was never canceled")
	}
	if !waitUntil(5*time.Second, func() bool { i, err := store.Info(context.Background(), name); return err == nil && i.Ended }) {
		t.Fatal("the stream never ended")
	}
	_, body, _ := resumeFrom(t, context.Background(), srv.URL, name+".1")
	tail := string(body)
	if i := strings.LastIndex(tail, `data: {"error"`); i >= 0 {
		tail = tail[i:]
	}
	if !strings.Contains(tail, `"source":"platform","reason":"truncated"`) || !strings.Contains(tail, "linger") {
		t.Fatalf("a resume after the linger ends with %q, want the platform's truncation", tail)
	}
}

// TestResumeStoreForgets: a store that forgets a stream while a resume is
// sending it (evicted for room between two of its Reads) ends the resume
// with a truncation, not with the 410 of a stream the resume did not find:
// its header is out, and part of the stream with it.
func TestResumeStoreForgets(t *testing.T) {
	store := &forgetful{Store: resume.NewMemoryStore(resume.MemoryConfig{})}
	h := middleware.NewHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		for i := range 600 { // more than one Read of the store
			fmt.Fprintf(w, "data: %d\n\n", i)
		}
	}), middleware.ServerConfig{Resume: &middleware.ResumeConfig{Store: store}})
	srv := httptest.NewServer(h)
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	name := resp.Header.Get(sse.ResumableStreamHeader)
	store.armed.Store(true)
	code, body, _ := resumeFrom(t, context.Background(), srv.URL, name+".1")
	tail := string(body)
	if i := strings.LastIndex(tail, `data: {"error"`); i >= 0 {
		tail = tail[i:]
	}
	if code != http.StatusOK || !strings.Contains(string(body), "data: 1\n") ||
		!strings.Contains(tail, `"source":"platform","reason":"truncated"`) || !strings.Contains(tail, "forgot the stream") {
		t.Fatalf("%d, last event %q", code, tail)
	}
}

// forgetful is a store that, once armed, forgets every stream at its
// second Read.
type forgetful struct {
	resume.Store
	armed atomic.Bool
	reads atomic.Int32
}

func (s *forgetful) Read(ctx context.Context, stream string, after uint64) ([]resume.Event, bool, error) {
	if s.armed.Load() && s.reads.Add(1) == 2 {
		return nil, false, resume.ErrExpired
	}
	return s.Store.Read(ctx, stream, after)
}
