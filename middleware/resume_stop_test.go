package middleware_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/streamguard/streamguard/middleware"
	"github.com/streamguard/streamguard/resume"
	"github.com/streamguard/streamguard/sse"
)

// TestResumeStop: closing ResumeConfig.Stop cancels the work of the
// streams still running, whether their client is still reading or left:
// each ends, for the client and in the store, with a truncated failure
// event from the platform after the events it had, at once, and a
// resume gets that failure at once too.
func TestResumeStop(t *testing.T) {
	for _, leave := range []bool{false, true} {
		store := resume.NewMemoryStore(resume.MemoryConfig{})
		stop := make(chan struct{})
		canceled := make(chan struct{})
		h := middleware.NewHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/event-stream")
			fmt.Fprint(w, "data: 1\n\ndata: 2\n\n")
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
				close(canceled)
			case <-time.After(time.Minute):
			}
		}), middleware.ServerConfig{Resume: &middleware.ResumeConfig{Store: store, Linger: time.Minute, Stop: stop}})
		srv := httptest.NewServer(h)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		name := resp.Header.Get(sse.ResumableStreamHeader)
		buf := make([]byte, 1024)
		n, _ := io.ReadAtLeast(resp.Body, buf, len("data: 1\nid: \n\ndata: 2\nid: \n\n")+2*len(name+".1"))
		if leave {
			resp.Body.Close()
			time.Sleep(50 * time.Millisecond)
		}
		start := time.Now()
		close(stop)
		select {
		case <-canceled:
		case <-time.After(5 * time.Second):
			t.Fatalf("leave %v: the handler's work was never canceled", leave)
		}
		if !leave {
			rest, _ := io.ReadAll(resp.Body)
			got := string(buf[:n]) + string(rest)
			if !strings.HasSuffix(got, "\nevent: error\nid: "+name+".3\n\n") || !strings.Contains(got, `"reason":"truncated"`) || !strings.Contains(got, `"retryable":true`) || !strings.Contains(got, "shut down") {
				t.Errorf("the client read %q, want its events and a truncated failure event", got)
			}
		}
		resp.Body.Close()
		_, body, err := resumeFrom(t, ctx, srv.URL, name+".2")
		if err != nil || !strings.Contains(string(body), `"source":"platform","reason":"truncated"`) || !strings.HasSuffix(string(body), "id: "+name+".3\n\n") {
			t.Errorf("leave %v: the resume read %q, %v; want the truncated failure event", leave, body, err)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("leave %v: the stream took %v to end after the stop", leave, d)
		}
		cancel()
		srv.Close()
	}
}

// TestResumeStopBeforeHeader: a stop that cancels the work before the
// response began is the platform's unavailability, to be retried at once
// at another replica: 503 with Retry-After, whatever error the handler
// reports for its canceled work (WriteError) or none (it returns); the
// stream it reserved is freed.
func TestResumeStopBeforeHeader(t *testing.T) {
	for _, how := range []string{"WriteError", "return"} {
		protocols(t, func(t *testing.T, h2 bool) {
			store := resume.NewMemoryStore(resume.MemoryConfig{})
			stop := make(chan struct{})
			started := make(chan struct{})
			h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("X-Handler", "1")
				close(started)
				select {
				case <-r.Context().Done():
				case <-time.After(10 * time.Second):
				}
				if how == "WriteError" {
					middleware.WriteError(w, r, r.Context().Err())
				}
			})
			srv := serve(t, h2, middleware.ServerConfig{Resume: &middleware.ResumeConfig{Store: store, Linger: time.Minute, Stop: stop}}, h)
			go func() { <-started; close(stop) }()
			resp, body, err := rawGet(t, srv, "/")
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") != "1" {
				t.Errorf("%s: %d, Retry-After %q; want 503 and 1", how, resp.StatusCode, resp.Header.Get("Retry-After"))
			}
			if !strings.Contains(string(body), `"error":"the server shut down before the response began: retry"`) {
				t.Errorf("%s: body %s; want the server's shutdown", how, body)
			}
			if n, _ := store.Len(); n != 0 {
				t.Errorf("%s: %d streams left in the store", how, n)
			}
		})
	}
}

// TestResumeStopAfterTerminal: a stop that comes after the relay passed on
// its upstream's whole stream (its terminal event), while the upstream had
// not closed its body yet, ends the stream as it is: it appended a
// truncated failure after the [DONE], for the client and for resumes.
func TestResumeStopAfterTerminal(t *testing.T) {
	release := make(chan struct{})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "data: {\"x\":1}\n\ndata: [DONE]\n\n")
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer up.Close()
	defer close(release)
	u, _ := url.Parse(up.URL)
	store := resume.NewMemoryStore(resume.MemoryConfig{})
	stop := make(chan struct{})
	client := middleware.NewClient(middleware.Config{})
	defer client.CloseIdleConnections()
	srv := httptest.NewServer(middleware.NewHandler(middleware.Relay(u, client),
		middleware.ServerConfig{Resume: &middleware.ResumeConfig{Store: store, Linger: time.Minute, Stop: stop}}))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL, strings.NewReader("{}"))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	name := resp.Header.Get(sse.ResumableStreamHeader)
	want := "data: {\"x\":1}\nid: " + name + ".1\n\ndata: [DONE]\nid: " + name + ".2\n\n"
	buf := make([]byte, len(want))
	if _, err := io.ReadFull(resp.Body, buf); err != nil || string(buf) != want {
		t.Fatalf("read %q, %v; want %q", buf, err, want)
	}
	close(stop)
	rest, err := io.ReadAll(resp.Body)
	if err != nil || len(rest) != 0 {
		t.Errorf("after the stop the client read %q, %v; want a clean end", rest, err)
	}
	status, body, err := resumeFrom(t, ctx, srv.URL, name+".2")
	if err != nil || status != 200 || len(body) != 0 {
		t.Errorf("a resume after the last event: %d %q, %v; want 200 and a clean end", status, body, err)
	}
}

// resumeFrom resumes the stream at url after the event id, and returns
// the answer's status and body.
func resumeFrom(t *testing.T, ctx context.Context, url, id string) (int, []byte, error) {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	req.Header.Set(sse.LastEventIDHeader, id)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, body, err
}

// TestResumeLateHeader: a handler that takes longer than the store keeps
// an untouched stream to send its header (an upstream queued for that
// long) still gets a stream it can store and that resumes: the writer's
// beats keep the reservation from its creation, not from its header.
func TestResumeLateHeader(t *testing.T) {
	store := resume.NewMemoryStore(resume.MemoryConfig{MaxAge: 150 * time.Millisecond})
	var logged strings.Builder
	h := middleware.NewHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(450 * time.Millisecond) // three times the store's MaxAge
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "data: 1\n\ndata: 2\n\n")
	}), middleware.ServerConfig{Resume: &middleware.ResumeConfig{Store: store, Linger: 40 * time.Millisecond},
		Logger: slog.New(slog.NewTextHandler(&logged, nil))})
	srv := httptest.NewServer(h)
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	io.ReadAll(resp.Body)
	resp.Body.Close()
	name := resp.Header.Get(sse.ResumableStreamHeader)
	status, body, _ := resumeFrom(t, context.Background(), srv.URL, name+".1")
	if want := "data: 2\nid: " + name + ".2\n\n"; status != 200 || string(body) != want {
		t.Errorf("the resume: %d %q, want 200 %q (logged: %s)", status, body, want, logged.String())
	}
}
