package middleware_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/streamguard/streamguard/middleware"
	"github.com/streamguard/streamguard/resume"
	"github.com/streamguard/streamguard/sse"
)

// TestResumeWriterGone: a resume of a stream that has not ended and whose
// writer shows no sign of life (its process went down: here, a stream in
// the store that nobody writes) gets the events stored after its id, then,
// a linger after the last of them was stored, a truncated failure event
// from the platform, instead of waiting for an event that never comes.
func TestResumeWriterGone(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const linger = 2 * time.Second
		store := resume.NewMemoryStore(resume.MemoryConfig{})
		h := middleware.NewHandler(http.NotFoundHandler(), middleware.ServerConfig{Resume: &middleware.ResumeConfig{Store: store, Linger: linger}})
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		req.Header.Set("Authorization", "Bearer sk-tenant-0123456789")
		name := storedStream(t, store, req)
		ctx := context.Background()
		time.Sleep(linger / 2) // the writer went down half a linger ago

		req.Header.Set(sse.LastEventIDHeader, name+".1")
		rctx, cancel := context.WithTimeout(ctx, 10*linger) // a regression fails, not hangs
		defer cancel()
		rec := httptest.NewRecorder()
		start := time.Now()
		h.ServeHTTP(rec, req.WithContext(rctx))
		waited := time.Since(start)

		body := rec.Body.String()
		want := "data: 2\nid: " + name + ".2\n\ndata: 3\nid: " + name + ".3\n\n"
		if rec.Code != http.StatusOK || !strings.HasPrefix(body, want) {
			t.Fatalf("%d %q, want the stored events first", rec.Code, body)
		}
		failure := body[len(want):]
		// The failure event gets the next id: a client sees it follow the
		// last event it got.
		for _, s := range []string{`"source":"platform"`, `"reason":"truncated"`, "no sign of life", "\nevent: error\n\n"} {
			if !strings.Contains(failure, s) {
				t.Fatalf("the end of the resume, %q, has no %q", failure, s)
			}
		}
		// The writer's last sign of life was linger/2 before the resume
		// came; the reader looks every beat (linger/4).
		if waited < linger/2 || waited > linger/2+linger/4 {
			t.Fatalf("the resume ended %v after it came, want %v to %v", waited, linger/2, linger/2+linger/4)
		}
	})
}

// TestResumeQuietWriter: a writer whose stream is quiet for many lingers
// (a model thinking) beats, so that a resume waiting on it gets its next
// event and its end, never a failure.
func TestResumeQuietWriter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const linger, quiet = 2 * time.Second, 10 * time.Second
		handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/event-stream")
			w.Write([]byte("data: 1\n\n"))
			w.(http.Flusher).Flush()
			time.Sleep(quiet)
			w.Write([]byte("data: [DONE]\n\n"))
		})
		h := middleware.NewHandler(handler, middleware.ServerConfig{Resume: &middleware.ResumeConfig{Linger: linger}})
		first := httptest.NewRecorder()
		done := make(chan struct{})
		go func() {
			defer close(done)
			h.ServeHTTP(first, httptest.NewRequest(http.MethodGet, "/", nil))
		}()
		synctest.Wait() // the handler sleeps after its first event
		name := first.Header().Get(sse.ResumableStreamHeader)
		if name == "" {
			t.Fatal("no Resumable-Stream header")
		}
		rctx, cancel := context.WithTimeout(context.Background(), 2*quiet) // a regression fails, not hangs
		defer cancel()
		req := httptest.NewRequestWithContext(rctx, http.MethodGet, "/", nil)
		req.Header.Set(sse.LastEventIDHeader, name+".1")
		resumed := httptest.NewRecorder()
		start := time.Now()
		h.ServeHTTP(resumed, req)
		if waited := time.Since(start); waited != quiet {
			t.Errorf("the resume ended after %v, want %v (the writer's end)", waited, quiet)
		}
		if want := "data: [DONE]\nid: " + name + ".2\n\n"; resumed.Code != http.StatusOK || resumed.Body.String() != want {
			t.Fatalf("%d %q, want %q", resumed.Code, resumed.Body.String(), want)
		}
		<-done
	})
}

// TestResumeLateHeaderBeats: a writer whose header comes more than a beat
// after its stream was created tells the store at once that it is alive,
// so that a resume that comes at once cannot find it silent for a linger
// and take it for gone.
func TestResumeLateHeaderBeats(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const linger = 2 * time.Second
		store := resume.NewMemoryStore(resume.MemoryConfig{})
		release := make(chan struct{})
		handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			time.Sleep(2 * linger) // a model that takes its time to answer
			w.Header().Set("Content-Type", "text/event-stream")
			w.WriteHeader(http.StatusOK)
			w.(http.Flusher).Flush()
			<-release
			w.Write([]byte("data: [DONE]\n\n"))
		})
		h := middleware.NewHandler(handler, middleware.ServerConfig{Resume: &middleware.ResumeConfig{Store: store, Linger: linger}})
		first := httptest.NewRecorder()
		done := make(chan struct{})
		go func() {
			defer close(done)
			h.ServeHTTP(first, httptest.NewRequest(http.MethodGet, "/", nil))
		}()
		time.Sleep(2 * linger)
		synctest.Wait() // the header is out; the handler waits
		name := first.Header().Get(sse.ResumableStreamHeader)
		info, err := store.Info(context.Background(), name)
		if err != nil {
			t.Fatal(err)
		}
		if silent := time.Since(info.Written); silent != 0 {
			t.Errorf("at the header, the store last heard of the writer %v ago, want now", silent)
		}
		close(release)
		<-done
	})
}

// blockRW is a ResponseRecorder whose writes after the first wait for
// block: a client that stopped reading.
type blockRW struct {
	*httptest.ResponseRecorder
	block  chan struct{}
	writes atomic.Int32
}

func (b *blockRW) Write(p []byte) (int, error) {
	if b.writes.Add(1) > 1 {
		<-b.block
	}
	return b.ResponseRecorder.Write(p)
}

// TestResumeWriterBlockedOnClient: a writer whose send to its first client
// is blocked (a client that stopped reading) still beats, so that a resume
// at the same time is not told the writer is gone. Real time: a goroutine
// waiting on a mutex is not durably blocked in a synctest bubble.
func TestResumeWriterBlockedOnClient(t *testing.T) {
	const linger = 400 * time.Millisecond
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		for i := 1; i <= 6; i++ {
			fmt.Fprintf(w, "data: %d\n\n", i)
			w.(http.Flusher).Flush()
			time.Sleep(100 * time.Millisecond)
		}
	})
	h := middleware.NewHandler(handler, middleware.ServerConfig{Resume: &middleware.ResumeConfig{Linger: linger}})
	first := &blockRW{ResponseRecorder: httptest.NewRecorder(), block: make(chan struct{})}
	done := make(chan struct{})
	go func() {
		defer close(done)
		h.ServeHTTP(first, httptest.NewRequest(http.MethodGet, "/", nil))
	}()
	var name string
	for i := 0; i < 500 && name == ""; i++ { // the header is out with the first event
		time.Sleep(10 * time.Millisecond)
		if first.writes.Load() > 1 {
			name = first.Header().Get(sse.ResumableStreamHeader)
		}
	}
	if name == "" {
		t.Fatal("no Resumable-Stream header")
	}
	unblock := time.AfterFunc(4*linger, func() { close(first.block) })
	defer unblock.Stop()
	rctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req := httptest.NewRequestWithContext(rctx, http.MethodGet, "/", nil)
	req.Header.Set(sse.LastEventIDHeader, name+".1")
	resumed := httptest.NewRecorder()
	h.ServeHTTP(resumed, req)
	<-done
	if body := resumed.Body.String(); strings.Contains(body, "event: error") || !strings.HasSuffix(body, "data: 6\nid: "+name+".6\n\n") {
		t.Fatalf("the resume got %q, want events 2 to 6 and the end", body)
	}
}

// TestResumeBudgetFailureID: a resume whose budget expires while it waits
// for the next event of a live stream ends with the budget's failure
// event, without an id (the stream's next event will have the next one,
// and a client's last event id must stay that of the last event it got),
// whether or not the resume sent events before it.
func TestResumeBudgetFailureID(t *testing.T) {
	for _, from := range []uint64{1, 3} {
		t.Run(fmt.Sprint("from ", from), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				const budget = time.Second
				store := resume.NewMemoryStore(resume.MemoryConfig{})
				cfg := middleware.ServerConfig{Resume: &middleware.ResumeConfig{Store: store, Linger: time.Minute}}
				h := middleware.NewHandler(http.NotFoundHandler(), cfg)
				req := httptest.NewRequest(http.MethodGet, "/", nil)
				name := storedStream(t, store, req)
				req.Header.Set(sse.LastEventIDHeader, fmt.Sprint(name, ".", from))
				req.Header.Set(middleware.TimeoutHeader, fmt.Sprint(budget.Milliseconds()))
				rec := httptest.NewRecorder()
				start := time.Now()
				h.ServeHTTP(rec, req)
				if waited := time.Since(start); waited != budget {
					t.Errorf("the resume ended after %v, want its budget, %v", waited, budget)
				}
				body := rec.Body.String()
				var want string
				for seq := from + 1; seq <= 3; seq++ {
					want += fmt.Sprintf("data: %d\nid: %s.%d\n\n", seq, name, seq)
				}
				if rec.Code != http.StatusOK || !strings.HasPrefix(body, want) {
					t.Fatalf("%d %q, want the stored events after %d first", rec.Code, body, from)
				}
				failure := body[len(want):]
				for _, s := range []string{"event: error\n", `"reason":"timeout"`} {
					if !strings.Contains(failure, s) {
						t.Fatalf("the end of the resume, %q, has no %q", failure, s)
					}
				}
				if strings.Contains(failure, "id:") {
					t.Fatalf("the end of the resume, %q, has an id", failure)
				}
				if !strings.HasSuffix(failure, "\n\n") || strings.Count(failure, "\n\n") != 1 {
					t.Fatalf("the end of the resume, %q, is not one event", failure)
				}
			})
		})
	}
}

// TestResumeBudgetFailureLast: when a resume's budget expires while it
// sends a live stream's events, its failure event is the last thing it
// sends: no event after it; a resume's has no id, a new stream's (stored)
// the next one. Real time, so that the budget's goroutine and the
// resume's writes race.
func TestResumeBudgetFailureLast(t *testing.T) {
	const events = 5000
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		for i := 1; i <= events && r.Context().Err() == nil; i++ {
			fmt.Fprintf(w, "data: %d\n\n", i)
			w.(http.Flusher).Flush()
			if i%10 == 0 {
				time.Sleep(time.Millisecond)
			}
		}
	})
	store := resume.NewMemoryStore(resume.MemoryConfig{})
	h := middleware.NewHandler(handler, middleware.ServerConfig{Resume: &middleware.ResumeConfig{Store: store, Linger: time.Second}})
	first := &namedRW{ResponseRecorder: httptest.NewRecorder(), name: make(chan string, 1)}
	fctx, stop := context.WithCancel(context.Background())
	defer stop()
	done := make(chan struct{})
	go func() {
		defer close(done)
		h.ServeHTTP(first, httptest.NewRequestWithContext(fctx, http.MethodGet, "/", nil))
	}()
	defer func() { stop(); <-done }()
	var name string
	select {
	case name = <-first.name:
	case <-time.After(5 * time.Second):
	}
	if name == "" {
		t.Fatal("no Resumable-Stream header")
	}
	if !waitUntil(5*time.Second, func() bool { info, err := store.Info(context.Background(), name); return err == nil && info.Last > 0 }) {
		t.Fatal("no event stored")
	}
	for round := range 5 {
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		req.Header.Set(sse.LastEventIDHeader, name+".1")
		req.Header.Set(middleware.TimeoutHeader, fmt.Sprint(20+10*round))
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		failureLast(t, rec.Body.String(), name, 1, true)
	}
	// The same for a new stream whose budget expires while its handler
	// writes.
	for round := range 5 {
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		req.Header.Set(middleware.TimeoutHeader, fmt.Sprint(20+10*round))
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		failureLast(t, rec.Body.String(), rec.Header().Get(sse.ResumableStreamHeader), 0, false)
	}
}

// failureLast checks that body holds the events of stream name after
// from, each with its id, then the failure event, and nothing after it:
// a resume's (resumed) without an id, a stream's own with the next id.
func failureLast(t *testing.T, body, name string, from int, resumed bool) {
	t.Helper()
	blocks := strings.Split(strings.TrimSuffix(body, "\n\n"), "\n\n")
	last := blocks[len(blocks)-1]
	for i, b := range blocks[:len(blocks)-1] {
		if want := fmt.Sprintf("data: %d\nid: %s.%d", from+i+1, name, from+i+1); b != want {
			t.Fatalf("event %d of the response is %q, want %q", i+1, b, want)
		}
	}
	if resumed {
		if !strings.HasSuffix(last, "\nevent: error") || strings.Contains(last, "id:") {
			t.Fatalf("the response ends with %q after %d events, want the failure event without an id", last, len(blocks)-1)
		}
		return
	}
	if want := fmt.Sprintf("\nid: %s.%d", name, from+len(blocks)); !strings.Contains(last, "event: error\n") || !strings.HasSuffix(last, want) {
		t.Fatalf("the response ends with %q after %d events, want the failure event with id %s.%d", last, len(blocks)-1, name, from+len(blocks))
	}
}

// namedRW is a ResponseRecorder that hands over the Resumable-Stream
// header as the header is written.
type namedRW struct {
	*httptest.ResponseRecorder
	name chan string
}

func (n *namedRW) WriteHeader(code int) {
	n.ResponseRecorder.WriteHeader(code)
	n.name <- n.Header().Get(sse.ResumableStreamHeader)
}

// storedStream puts into store a stream of req's owner with events 1 to 3
// ("data: {seq}") that nobody writes, and returns its name.
func storedStream(t *testing.T, store resume.Store, req *http.Request) string {
	t.Helper()
	name := "abcdefghijklmnopqrstuvwxyz"
	ctx := context.Background()
	key, _ := store.Key(ctx)
	if err := store.Create(ctx, name, resume.OwnerHash(key, req, nil)); err != nil {
		t.Fatal(err)
	}
	var evs []resume.Event
	for seq := uint64(1); seq <= 3; seq++ {
		evs = append(evs, resume.Event{Seq: seq, Data: fmt.Appendf(nil, "data: %d\n", seq)})
	}
	if err := store.Append(ctx, name, evs); err != nil {
		t.Fatal(err)
	}
	return name
}
