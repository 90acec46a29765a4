package middleware_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/streamguard/streamguard"
	"github.com/streamguard/streamguard/gatewaytest"
	"github.com/streamguard/streamguard/middleware"
	"github.com/streamguard/streamguard/resume"
	"github.com/streamguard/streamguard/sse"
)

// TestResumableFailureStored: a resumable stream that fails after its
// header (the handler's WriteError, the budget, a panic) ends with a failure
// event that has the next id and is stored: a client that resumes from
// before it gets the events it missed and the same failure, which the
// client stack reports with its source and reason, not as a truncation.
func TestResumableFailureStored(t *testing.T) {
	upstream := &streamguard.Error{Source: streamguard.SourceModel, Reason: streamguard.ReasonModelError, StatusCode: 500, Message: "the model crashed"}
	cases := []struct {
		name   string
		budget time.Duration
		end    func(w http.ResponseWriter, r *http.Request) // after three events
		reason streamguard.Reason
	}{
		{"WriteError", 0, func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "data: partial, never ended") // dropped: neither sent nor stored
			middleware.WriteError(w, r, upstream)
		}, streamguard.ReasonModelError},
		{"budget", 300 * time.Millisecond, func(w http.ResponseWriter, r *http.Request) {
			<-r.Context().Done() // and return: the budget's event may not be out yet
		}, streamguard.ReasonTimeout},
		{"panic", 0, panicky, streamguard.ReasonModelError},
		{"budget, then a write", 300 * time.Millisecond, func(w http.ResponseWriter, r *http.Request) {
			<-r.Context().Done()
			for range 100 { // refused once the budget's event is out
				if _, err := io.WriteString(w, "data: too late\n\n"); err != nil {
					return
				}
				time.Sleep(5 * time.Millisecond)
			}
			t.Error("writes after the budget's failure event never failed")
		}, streamguard.ReasonTimeout},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			store := resume.NewMemoryStore(resume.MemoryConfig{})
			h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/event-stream")
				for _, d := range []string{"a", "b", "c"} {
					io.WriteString(w, "data: "+d+"\n\n")
				}
				http.NewResponseController(w).Flush()
				c.end(w, r)
			})
			var logs gatewaytest.SyncBuffer // the panic's log: its stack must still show where it began
			srv := httptest.NewServer(middleware.NewHandler(h, middleware.ServerConfig{
				Budget: c.budget, Resume: &middleware.ResumeConfig{Store: store}, Logger: slog.New(slog.NewTextHandler(&logs, nil))}))
			defer srv.Close()
			resp, err := http.Get(srv.URL)
			if err != nil {
				t.Fatal(err)
			}
			live, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			name := resp.Header.Get(sse.ResumableStreamHeader)
			data, ids := readEvents(t, live)
			n := len(data) // the failure's seq: the last
			last := name + "." + strconv.Itoa(n)
			if n < 4 || strings.Join(data[:3], "") != "abc" || ids[n-1] != last ||
				!strings.HasSuffix(string(live), "event: error\nid: "+last+"\n\n") || strings.Contains(string(live), "partial") {
				t.Fatalf("live: %q", live)
			}

			if c.name == "panic" && !strings.Contains(logs.String(), "middleware_test.panicky") {
				t.Fatalf("the panic's log lost the stack where it began:\n%s", logs.String())
			}

			// Resumed from event 2, through the client stack: event 3, then
			// the stored failure.
			client := middleware.NewClient(middleware.Config{})
			req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
			req.Header.Set(sse.LastEventIDHeader, name+".2")
			resp, err = client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resumed, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			var se *streamguard.Error
			if !errors.As(err, &se) || se.Reason != c.reason {
				t.Fatalf("the resumed stream ended with %v, want the failure of reason %s\n%q", err, c.reason, resumed)
			}
			if data, ids := readEvents(t, resumed); len(data) != n-2 || data[0] != "c" || ids[0] != name+".3" || ids[n-3] != last {
				t.Fatalf("resumed: %q", resumed)
			}
		})
	}
}

// panicky is a handler's bug, named so that its frame can be found in the
// panic's logged stack.
func panicky(http.ResponseWriter, *http.Request) { panic("the handler's bug") }

// refusingStore is a memory store that refuses every event past the
// first keep of a stream, as a Redis that stopped answering would.
type refusingStore struct {
	*resume.MemoryStore
	keep uint64
}

var errRefused = errors.New("redis: no answer within 10s")

func (s refusingStore) Append(ctx context.Context, stream string, events []resume.Event) error {
	if len(events) > 0 && events[len(events)-1].Seq > s.keep {
		return errRefused
	}
	return s.MemoryStore.Append(ctx, stream, events)
}

// TestResumableStoreRefuses: when the store refuses a stream's events,
// the stream goes on to its client whole, the Logger says which stream is
// stored up to which event, a resume from before that gets the events
// stored and then a truncated failure event, and one past it 404.
func TestResumableStoreRefuses(t *testing.T) {
	const n, keep = 30, 10
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		for i := range n {
			io.WriteString(w, "data: "+strconv.Itoa(i+1)+"\n\n")
			http.NewResponseController(w).Flush()
		}
	})
	var logs gatewaytest.SyncBuffer
	srv := httptest.NewServer(middleware.NewHandler(h, middleware.ServerConfig{
		Resume: &middleware.ResumeConfig{Store: refusingStore{resume.NewMemoryStore(resume.MemoryConfig{}), keep}},
		Logger: slog.New(slog.NewTextHandler(&logs, nil))}))
	defer srv.Close()
	get := func(lastID string) (*http.Response, []string, []string) {
		req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
		if lastID != "" {
			req.Header.Set(sse.LastEventIDHeader, lastID)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		data, ids := readEvents(t, body)
		return resp, data, ids
	}
	resp, data, ids := get("")
	name := resp.Header.Get(sse.ResumableStreamHeader)
	if len(data) != n || data[n-1] != strconv.Itoa(n) || ids[n-1] != name+"."+strconv.Itoa(n) {
		t.Fatalf("live: %d events, ids %v", len(data), ids)
	}
	want := "stream " + name + " is stored up to event " + strconv.Itoa(keep) + " at least"
	for i := 0; i < 500 && !strings.Contains(logs.String(), want); i++ { // logged as the handler returns
		time.Sleep(10 * time.Millisecond)
	}
	if !strings.Contains(logs.String(), want) || !strings.Contains(logs.String(), errRefused.Error()) {
		t.Fatalf("the log does not say %q:\n%s", want, logs.String())
	}
	// A resume gets the events stored, then a failure event saying the
	// rest is lost (not a clean end), at once; the failure has no id, so
	// the client's last event id stays that of the last event stored.
	for _, from := range []int{3, keep} {
		_, data, ids := get(name + "." + strconv.Itoa(from))
		if len(data) != keep-from+1 || (from < keep && (data[0] != "4" || data[keep-4] != strconv.Itoa(keep))) {
			t.Fatalf("resumed from event %d: %q", from, data)
		}
		last, wantID := data[len(data)-1], name+"."+strconv.Itoa(keep)
		if from == keep {
			wantID = "" // no event before it
		}
		if ids[len(ids)-1] != wantID || !strings.Contains(last, `"reason":"truncated"`) || !strings.Contains(last, "broke off on the server") {
			t.Fatalf("resumed from event %d: it ends with %q (last event id %q), want the truncation, without an id", from, last, ids[len(ids)-1])
		}
	}
	if resp, _, _ := get(name + "." + strconv.Itoa(keep+1)); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("resumed past the events stored: %d, want 404", resp.StatusCode)
	}
}

// TestResumableStoreRefusesLive: a resume of a stream whose store refused
// its events learns of the loss at once, while the handler still runs: the
// stream ends short in the store at the refusal, not when the handler
// returns (nor a linger later).
func TestResumableStoreRefusesLive(t *testing.T) {
	const n, keep = 30, 10
	release := make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		for i := range n {
			io.WriteString(w, "data: "+strconv.Itoa(i+1)+"\n\n")
			http.NewResponseController(w).Flush()
		}
		select {
		case <-release:
		case <-time.After(20 * time.Second):
		}
	})
	srv := httptest.NewServer(middleware.NewHandler(h, middleware.ServerConfig{
		Resume: &middleware.ResumeConfig{Store: refusingStore{resume.NewMemoryStore(resume.MemoryConfig{}), keep}}}))
	defer srv.Close()
	defer close(release)
	client := &http.Client{Timeout: 10 * time.Second}
	live, err := client.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer live.Body.Close()
	buf := make([]byte, 0, 4096)
	for !strings.Contains(string(buf), "data: "+strconv.Itoa(n)+"\n") { // all n events sent: the refusal is behind
		k, err := live.Body.Read(buf[len(buf):cap(buf)])
		if err != nil {
			t.Fatalf("live stream: %v after %q", err, buf)
		}
		buf = buf[:len(buf)+k]
	}
	name := live.Header.Get(sse.ResumableStreamHeader)
	req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
	req.Header.Set(sse.LastEventIDHeader, name+".3")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatalf("the resume did not end while the handler runs: %v", err)
	}
	data, ids := readEvents(t, body)
	if len(data) != keep-3+1 || ids[len(ids)-1] != name+"."+strconv.Itoa(keep) || !strings.Contains(data[len(data)-1], `"reason":"truncated"`) {
		t.Fatalf("resume while the handler runs: %q, ids %q", data, ids)
	}
}

// TestResumableStoreDownSaysLittle: a store that fails (not a full one)
// costs a new stream its resume, not its service: the handler serves it
// without the Resumable-Stream header or ids, and the failure is logged. A
// resume gets 503 with Retry-After, and the store's error, which names
// internal hosts, is not sent to the client.
func TestResumableStoreDownSaysLittle(t *testing.T) {
	mem := resume.NewMemoryStore(resume.MemoryConfig{})
	for _, store := range []resume.Store{downStore{mem}, createFails{downStore{mem}}} {
		var logs strings.Builder
		h := middleware.NewHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/event-stream")
			io.WriteString(w, "data: one\n\ndata: two\n\n")
		}), middleware.ServerConfig{Logger: slog.New(slog.NewTextHandler(&logs, nil)),
			Resume: &middleware.ResumeConfig{Store: store}})
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
		if rec.Code != http.StatusOK || rec.Header().Get(sse.ResumableStreamHeader) != "" ||
			rec.Body.String() != "data: one\n\ndata: two\n\n" || !strings.Contains(logs.String(), "served without resume") {
			t.Fatalf("%T, a new stream: %d %q %q; logged %q", store, rec.Code, rec.Header(), rec.Body.String(), logs.String())
		}
		if n, _ := mem.Len(); n != 0 {
			t.Fatalf("%T: the store holds %d streams", store, n)
		}

		req := httptest.NewRequest(http.MethodGet, "/", nil)
		req.Header.Set(sse.LastEventIDHeader, "abcdefghijklmnopqrstuvwxyz.1")
		rec = httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") == "" ||
			!strings.Contains(rec.Body.String(), "store of resumable streams failed") || strings.Contains(rec.Body.String(), "10.1.2.3") {
			t.Fatalf("%T, a resume: %d (Retry-After %q) %q", store, rec.Code, rec.Header().Get("Retry-After"), rec.Body.String())
		}
	}
}

// createFails is a store whose Redis went down after it read the key.
type createFails struct{ downStore }

func (createFails) Key(context.Context) ([]byte, error)          { return make([]byte, 32), nil }
func (createFails) Create(context.Context, string, []byte) error { return errDown }

// downStore is a store whose Redis cannot be reached.
type downStore struct{ resume.Store }

var errDown = errors.New("dial tcp 10.1.2.3:6379: connect: connection refused")

func (downStore) Key(context.Context) ([]byte, error) { return nil, errDown }
func (downStore) Info(context.Context, string) (resume.Info, error) {
	return resume.Info{}, errDown
}
