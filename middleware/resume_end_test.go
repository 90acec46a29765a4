package middleware_test

import (
	"context"
	"errors"
	"fmt"
	"io"
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

// endFails is a store whose first End fails, as a Redis in failover would.
type endFails struct {
	*resume.MemoryStore
	ends atomic.Int32
}

func (s *endFails) End(ctx context.Context, stream string) error {
	if s.ends.Add(1) == 1 {
		return errors.New("redis: connection reset by peer")
	}
	return s.MemoryStore.End(ctx, stream)
}

// TestResumeEndRetried: a stream whose first End the store refuses for a
// moment is still ended in the store, so that a resume of it gets its
// clean end, not the failure of a writer gone.
func TestResumeEndRetried(t *testing.T) {
	store := &endFails{MemoryStore: resume.NewMemoryStore(resume.MemoryConfig{})}
	h := middleware.NewHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprintf(w, "data: 1\n\ndata: 2\n\n")
	}), middleware.ServerConfig{Resume: &middleware.ResumeConfig{Store: store, Linger: time.Second}})
	first := httptest.NewRecorder()
	h.ServeHTTP(first, httptest.NewRequest(http.MethodGet, "/", nil))
	name := first.Header().Get(sse.ResumableStreamHeader)
	info, err := store.Info(context.Background(), name)
	if err != nil || !info.Ended || info.Last != 2 {
		t.Fatalf("after %d Ends: %+v, %v; want ended after event 2", store.ends.Load(), info, err)
	}
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	req.Header.Set(sse.LastEventIDHeader, name+".1")
	resumed := httptest.NewRecorder()
	h.ServeHTTP(resumed, req)
	if want := "data: 2\nid: " + name + ".2\n\n"; resumed.Code != 200 || resumed.Body.String() != want {
		t.Fatalf("%d %q, want %q", resumed.Code, resumed.Body.String(), want)
	}
}

// TestResumeHead: a HEAD request with a Last-Event-ID gets the header a
// GET would (checked as a GET is), at once, without tailing the live
// stream it names.
func TestResumeHead(t *testing.T) {
	store := resume.NewMemoryStore(resume.MemoryConfig{})
	h := middleware.NewHandler(http.NotFoundHandler(), middleware.ServerConfig{Resume: &middleware.ResumeConfig{Store: store}})
	req := httptest.NewRequest(http.MethodHead, "/", nil)
	name := storedStream(t, store, req) // live: nobody ends it
	for id, want := range map[string]int{name + ".1": 200, name + ".9": 404, "x.1": 400} {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		req := httptest.NewRequestWithContext(ctx, http.MethodHead, "/", nil)
		req.Header.Set(sse.LastEventIDHeader, id)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		late := ctx.Err()
		cancel()
		if late != nil || rec.Code != want {
			t.Errorf("HEAD %s: %d (%v), want %d at once", id, rec.Code, late, want)
		}
		if want == 200 && (rec.Header().Get(sse.ResumableStreamHeader) != name || rec.Body.Len() != 0) {
			t.Errorf("HEAD %s: header %q, body %q", id, rec.Header().Get(sse.ResumableStreamHeader), rec.Body.String())
		}
	}
}

// slowEndStore is a memory store whose End and Delete take a while: a
// store's round trip under load.
type slowEndStore struct {
	*resume.MemoryStore
	d time.Duration
}

func (s slowEndStore) End(ctx context.Context, name string) error {
	time.Sleep(s.d)
	return s.MemoryStore.End(ctx, name)
}

func (s slowEndStore) Delete(ctx context.Context, name string) error {
	time.Sleep(s.d)
	return s.MemoryStore.Delete(ctx, name)
}

// TestResumeBudgetAfterHandler: a budget that expires after the handler
// returned, while the store ends (or deletes) the stream, does not end the
// whole response: no failure event after a complete stream, no abort of a
// whole JSON body.
func TestResumeBudgetAfterHandler(t *testing.T) {
	for _, tc := range []struct{ name, ct, body string }{
		{"event stream", "text/event-stream", "data: done\n\n"},
		{"json", "application/json", `{"ok":true}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				store := slowEndStore{resume.NewMemoryStore(resume.MemoryConfig{}), 2 * time.Second}
				h := middleware.NewHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					w.Header().Set("Content-Type", tc.ct)
					io.WriteString(w, tc.body)
				}), middleware.ServerConfig{Budget: time.Second, Resume: &middleware.ResumeConfig{Store: store}})
				rec := httptest.NewRecorder()
				var aborted any
				func() {
					defer func() { aborted = recover() }()
					h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
				}()
				if aborted != nil || strings.Contains(rec.Body.String(), "error") {
					t.Fatalf("a whole response, then the budget while the store ended it: %q, panic %v", rec.Body.String(), aborted)
				}
			})
		})
	}
}
