package middleware_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/streamguard/streamguard/middleware"
	"github.com/streamguard/streamguard/resume"
	"github.com/streamguard/streamguard/sse"
)

// slowRW is a client that takes rate bytes a second: each write lasts
// len(p)/rate.
type slowRW struct {
	*httptest.ResponseRecorder
	rate int
}

func (s *slowRW) Write(p []byte) (int, error) {
	time.Sleep(time.Duration(len(p)) * time.Second / time.Duration(s.rate))
	return s.ResponseRecorder.Write(p)
}

// TestResumeSlowReaderKeepsWriter: the first client went away, and a
// resume reads the stream at 256 KiB/s, steadily (its first batch, over a
// MiB, takes four lingers to send). The resume still counts as a reader
// while it sends: the stream's work goes on, and the resume gets every
// event and the clean end, not a truncated stream.
func TestResumeSlowReaderKeepsWriter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const linger = time.Second
		payload := strings.Repeat("x", 16<<10)
		handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/event-stream")
			for i := 1; i <= 80; i++ { // 1.25 MiB at once, then slowly
				fmt.Fprintf(w, "data: %d %s\n\n", i, payload)
				w.(http.Flusher).Flush()
				if i > 64 {
					select {
					case <-time.After(200 * time.Millisecond):
					case <-r.Context().Done():
						return
					}
				}
			}
		})
		h := middleware.NewHandler(handler, middleware.ServerConfig{Resume: &middleware.ResumeConfig{Linger: linger}})
		first := &namedRW{ResponseRecorder: httptest.NewRecorder(), name: make(chan string, 1)}
		fctx, leave := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			h.ServeHTTP(first, httptest.NewRequestWithContext(fctx, http.MethodGet, "/", nil))
		}()
		name := <-first.name
		leave() // the first client goes away at once
		time.Sleep(10 * time.Millisecond)

		req := httptest.NewRequest(http.MethodGet, "/", nil)
		req.Header.Set(sse.LastEventIDHeader, name+".0")
		resumed := &slowRW{ResponseRecorder: httptest.NewRecorder(), rate: 256 << 10}
		h.ServeHTTP(resumed, req)
		<-done
		body := resumed.Body.String()
		if strings.Contains(body, "event: error") || !strings.HasSuffix(body, "id: "+name+".80\n\n") {
			i := strings.LastIndex(body, "id: ")
			t.Fatalf("the resume got %d events and then %q; want events 1 to 80 and the clean end",
				strings.Count(body, "\nid: "), body[i:])
		}
	})
}

// getFrom GETs srv's stream, resuming it from lastID unless it is "".
func getFrom(t *testing.T, srv *httptest.Server, lastID string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
	if lastID != "" {
		req.Header.Set(sse.LastEventIDHeader, lastID)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// TestResumeQuietEnd: a stream quiet for longer than its linger before its
// end still ends cleanly, over a real connection, on its first connection
// and on a resume: the write deadline of the last send, a linger, must not
// cut off the response's end (here the last chunk of HTTP/1.1).
func TestResumeQuietEnd(t *testing.T) {
	const linger = 200 * time.Millisecond
	store := resume.NewMemoryStore(resume.MemoryConfig{})
	rc := &middleware.ResumeConfig{Store: store, Linger: linger}
	h := middleware.NewHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprintf(w, "data: 1\n\n")
		w.(http.Flusher).Flush()
		time.Sleep(3 * linger)
	}), middleware.ServerConfig{Resume: rc})
	srv := httptest.NewServer(h)
	defer srv.Close()
	get := func(lastID string) string {
		t.Helper()
		resp := getFrom(t, srv, lastID)
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatalf("%q, then %v; want a clean end", b, err)
		}
		return string(b)
	}
	if body := get(""); !strings.HasPrefix(body, "data: 1\nid: ") {
		t.Fatalf("first connection: %q", body)
	}

	// A resume of a stream whose writer (here the test) sends an event,
	// then only beats for three lingers, then ends it.
	req := httptest.NewRequest(http.MethodGet, srv.URL, nil)
	name := storedStream(t, store, req)
	go func() {
		ctx := context.Background()
		store.Append(ctx, name, []resume.Event{{Seq: 4, Data: []byte("data: 4\n")}})
		for range 12 {
			time.Sleep(linger / 4)
			store.Append(ctx, name, nil)
		}
		store.End(ctx, name)
	}()
	if body := get(name + ".3"); body != "data: 4\nid: "+name+".4\n\n" {
		t.Fatalf("resume: %q", body)
	}
}

// TestResumeQuietHeartbeat: with heartbeats on, a stream quiet for longer
// than its linger keeps its reading client, on its first connection and on
// a resume, over HTTP/1.1 and HTTP/2: a heartbeat renews the write
// deadline of the sends, long past by then, instead of meeting it and
// taking the client for gone.
func TestResumeQuietHeartbeat(t *testing.T) {
	const linger = 200 * time.Millisecond
	for _, h2 := range []bool{false, true} {
		t.Run(map[bool]string{false: "HTTP/1.1", true: "HTTP/2"}[h2], func(t *testing.T) {
			release := make(chan struct{})
			h := middleware.NewHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/event-stream")
				fmt.Fprintf(w, "data: 1\n\n")
				w.(http.Flusher).Flush()
				select { // the model thinks for lingers
				case <-release:
				case <-time.After(3 * linger):
				}
				fmt.Fprintf(w, "data: 2\n\n")
			}), middleware.ServerConfig{Heartbeat: linger / 4, Resume: &middleware.ResumeConfig{Linger: linger}})
			srv := httptest.NewUnstartedServer(h)
			srv.EnableHTTP2 = h2
			if h2 {
				srv.StartTLS()
			} else {
				srv.Start()
			}
			defer srv.Close()
			get := func(lastID string) *http.Response { return getFrom(t, srv, lastID) }
			read := func(resp *http.Response, what string) {
				t.Helper()
				defer resp.Body.Close()
				b, err := io.ReadAll(resp.Body)
				if err != nil || !strings.Contains(string(b), "data: 2") {
					t.Fatalf("%s: %q, then %v; want event 2 and a clean end", what, b, err)
				}
			}
			read(get(""), "first connection")

			// A resume from the start of a stream whose first client left.
			release = make(chan struct{})
			first := get("")
			first.Body.Close()
			resumed := get(first.Header.Get(sse.ResumableStreamHeader) + ".0")
			time.AfterFunc(3*linger, func() { close(release) })
			read(resumed, "resume")
		})
	}
}

// TestResumeClientStopsReading: a resume whose client stops reading
// without closing (a half-open connection) ends a linger after its last
// send could go out, as on a stream's first connection, instead of holding
// its connection, and the reader's place, until its budget ends.
func TestResumeClientStopsReading(t *testing.T) {
	const linger = 300 * time.Millisecond
	store := resume.NewMemoryStore(resume.MemoryConfig{})
	served := make(chan struct{}, 1)
	h := middleware.NewHandler(http.NotFoundHandler(), middleware.ServerConfig{Resume: &middleware.ResumeConfig{Store: store, Linger: linger}})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(w, r)
		served <- struct{}{}
	}))
	defer srv.Close()

	// A stream of 32 MiB, more than the sockets' buffers hold.
	req := httptest.NewRequest(http.MethodGet, srv.URL, nil)
	name := storedStream(t, store, req)
	data := append(append([]byte("data: "), bytes.Repeat([]byte("x"), 64<<10)...), '\n')
	for seq := uint64(4); seq < 4+512; seq++ {
		if err := store.Append(context.Background(), name, []resume.Event{{Seq: seq, Data: data}}); err != nil {
			t.Fatal(err)
		}
	}
	store.End(context.Background(), name)

	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "GET / HTTP/1.1\r\nHost: x\r\nLast-Event-ID: %s.3\r\n\r\n", name)
	status, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil || !strings.Contains(status, " 200 ") {
		t.Fatalf("%q, %v", status, err)
	}
	// The client reads no more.
	select {
	case <-served:
	case <-time.After(10 * time.Second):
		t.Fatal("the resume still holds its client 10 s after it stopped reading")
	}
}
