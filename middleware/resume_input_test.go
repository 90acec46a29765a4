package middleware_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/streamguard/streamguard/gatewaytest"
	"github.com/streamguard/streamguard/middleware"
	"github.com/streamguard/streamguard/resume"
	"github.com/streamguard/streamguard/sse"
)

// get sends a GET with the given headers and returns the status, the
// header and the body.
func get(t *testing.T, url string, h map[string]string) (int, http.Header, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	for k, v := range h {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

// TestResumeBadInput sends resumes that must be refused with a clear JSON
// error and never another stream's data.
func TestResumeBadInput(t *testing.T) {
	clk := &fakeClock{now: time.Unix(1e9, 0)}
	store := resume.NewMemoryStore(resume.MemoryConfig{MaxStreams: 2, MaxAge: time.Hour, Now: clk.Now})
	srv := httptest.NewServer(middleware.NewHandler(gatewaytest.ChatStream(5), middleware.ServerConfig{Resume: &middleware.ResumeConfig{Store: store}}))
	defer srv.Close()
	auth := map[string]string{"Authorization": "Bearer sk-tenant-a-0123456789"}
	status, h, body := get(t, srv.URL, auth)
	name := h.Get(sse.ResumableStreamHeader)
	if status != 200 || !sse.ValidStreamName(name) || !strings.Contains(body, "id: "+name+".6\n") {
		t.Fatalf("the stream: %d %q %q", status, name, body)
	}
	for _, tc := range []struct {
		name   string
		id     string
		auth   string
		status int
	}{
		{"malformed", "not-an-id", "Bearer sk-tenant-a-0123456789", 400},
		{"huge", name + "." + strings.Repeat("1", 300), "Bearer sk-tenant-a-0123456789", 400},
		{"unknown stream", strings.Repeat("ab", 16) + ".1", "Bearer sk-tenant-a-0123456789", 404},
		{"another tenant's", name + ".1", "Bearer sk-tenant-b-0123456789", 404},
		{"no credentials", name + ".1", "", 404},
		{"far ahead", name + ".999", "Bearer sk-tenant-a-0123456789", 404},
		{"far ahead, the largest seq", name + ".18446744073709551615", "Bearer sk-tenant-a-0123456789", 404},
		{"past the largest seq", name + ".18446744073709551616", "Bearer sk-tenant-a-0123456789", 400},
		{"a leading zero", name + ".02", "Bearer sk-tenant-a-0123456789", 400},
		{"zeros", name + ".00", "Bearer sk-tenant-a-0123456789", 400},
		{"a sign", name + ".+2", "Bearer sk-tenant-a-0123456789", 400},
		{"no seq", name + ".", "Bearer sk-tenant-a-0123456789", 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := map[string]string{"Last-Event-ID": tc.id}
			if tc.auth != "" {
				h["Authorization"] = tc.auth
			}
			status, hdr, body := get(t, srv.URL, h)
			var doc struct {
				Error string `json:"error"`
			}
			if status != tc.status || !strings.HasPrefix(hdr.Get("Content-Type"), "application/json") || json.Unmarshal([]byte(body), &doc) != nil || doc.Error == "" {
				t.Fatalf("%d %q %q, want %d and a JSON error", status, hdr.Get("Content-Type"), body, tc.status)
			}
			if strings.Contains(body, "chatcmpl") || strings.Contains(body, "sk-tenant") {
				t.Fatalf("the error carries stream data or a credential: %q", body)
			}
		})
	}
	t.Run("the owner resumes", func(t *testing.T) {
		status, _, body := get(t, srv.URL, map[string]string{"Last-Event-ID": name + ".4", "Authorization": "Bearer sk-tenant-a-0123456789"})
		if status != 200 || strings.Count(body, "\n\n") != 2 || !strings.Contains(body, "id: "+name+".5\n") || !strings.HasSuffix(body, "data: [DONE]\nid: "+name+".6\n\n") {
			t.Fatalf("%d %q", status, body)
		}
	})
	t.Run("store full: 503 for new streams, old ones unharmed", func(t *testing.T) {
		block := make(chan struct{})
		var started sync.WaitGroup
		held := httptest.NewServer(middleware.NewHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/event-stream")
			io.WriteString(w, "data: {}\n\n")
			http.NewResponseController(w).Flush()
			started.Done()
			<-block
		}), middleware.ServerConfig{Resume: &middleware.ResumeConfig{Store: store}}))
		defer held.Close()
		defer close(block)
		// The store holds the ended stream above and takes one live one;
		// the ended one is evicted for it, and then nothing more fits.
		started.Add(2)
		for range 2 {
			go func() {
				resp, err := http.Get(held.URL)
				if err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			}()
		}
		started.Wait()
		status, h, body := get(t, held.URL, nil)
		if status != 503 || h.Get("Retry-After") == "" || !strings.Contains(body, "full") {
			t.Fatalf("%d Retry-After %q %q", status, h.Get("Retry-After"), body)
		}
		if n, _ := store.Len(); n != 2 {
			t.Fatalf("the store holds %d streams", n)
		}
	})
	t.Run("expired", func(t *testing.T) {
		clk.add(2 * time.Hour)
		status, _, body := get(t, srv.URL, map[string]string{"Last-Event-ID": name + ".1", "Authorization": "Bearer sk-tenant-a-0123456789"})
		if status != 410 {
			t.Fatalf("%d %q, want 410", status, body)
		}
		// Another tenant learns nothing of it: not that it expired.
		status, _, body = get(t, srv.URL, map[string]string{"Last-Event-ID": name + ".1", "Authorization": "Bearer sk-tenant-b-0123456789"})
		if status != 404 || strings.Contains(body, "expired") {
			t.Fatalf("another tenant's expired stream: %d %q, want 404", status, body)
		}
	})
}

// plainExpired is a store that says a stream expired without saying whose
// it was.
type plainExpired struct{ resume.Store }

func (plainExpired) Info(context.Context, string) (resume.Info, error) {
	return resume.Info{}, resume.ErrExpired
}

// TestResumeExpiredOwnerUnknown: an expired stream whose store cannot say
// whose it was is answered 404, as one never held, to anyone.
func TestResumeExpiredOwnerUnknown(t *testing.T) {
	store := plainExpired{resume.NewMemoryStore(resume.MemoryConfig{})}
	srv := httptest.NewServer(middleware.NewHandler(gatewaytest.ChatStream(1), middleware.ServerConfig{Resume: &middleware.ResumeConfig{Store: store}}))
	defer srv.Close()
	status, _, body := get(t, srv.URL, map[string]string{"Last-Event-ID": strings.Repeat("ab", 16) + ".1", "Authorization": "Bearer sk-tenant-a-0123456789"})
	if status != 404 || strings.Contains(body, "expired") {
		t.Fatalf("%d %q, want 404", status, body)
	}
}

type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *fakeClock) add(d time.Duration) { c.mu.Lock(); c.now = c.now.Add(d); c.mu.Unlock() }

// TestResumableNotAStreamLeavesNothing: a response that is not a
// resumable event stream (JSON, an error status, a content-encoded stream,
// nothing at all) gets no Resumable-Stream header, and the stream reserved
// for it is deleted from the store when the handler returns, so that such
// calls neither fill the store nor push out streams a client may resume.
func TestResumableNotAStreamLeavesNothing(t *testing.T) {
	store := resume.NewMemoryStore(resume.MemoryConfig{})
	cases := map[string]http.HandlerFunc{
		"json": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `{"ok":true}`)
		},
		"an error status": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/event-stream")
			w.WriteHeader(http.StatusTooManyRequests)
			io.WriteString(w, "data: busy\n\n")
		},
		"gzip": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/event-stream")
			w.Header().Set("Content-Encoding", "gzip")
			w.Write([]byte{0x1f, 0x8b})
		},
		"nothing": func(w http.ResponseWriter, r *http.Request) {},
	}
	for name, h := range cases {
		rec := httptest.NewRecorder()
		middleware.NewHandler(h, middleware.ServerConfig{Resume: &middleware.ResumeConfig{Store: store}}).
			ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
		if rec.Header().Get(sse.ResumableStreamHeader) != "" {
			t.Fatalf("%s: Resumable-Stream %q", name, rec.Header().Get(sse.ResumableStreamHeader))
		}
		if n, bytes := store.Len(); n != 0 || bytes != 0 {
			t.Fatalf("%s: the store holds %d streams (%d bytes)", name, n, bytes)
		}
	}
}
