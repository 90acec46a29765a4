package middleware_test

import (
	"bytes"
	"context"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/streamguard/streamguard/middleware"
	"github.com/streamguard/streamguard/resume"
	"github.com/streamguard/streamguard/sse"
	gosse "github.com/tmaxmax/go-sse"
)

// TestResumableFraming writes events with LF, CRLF and CR line ends, and
// comments, in writes split at random points (a CRLF split between two
// writes too): every event with data gets the next id, is stored, and
// reaches the client whole; comments pass without an id.
func TestResumableFraming(t *testing.T) {
	events := []string{
		"data: a\n\n",
		"event: x\r\ndata: b\r\ndata: c\r\n\r\n",
		": comment\n\n",
		"data: d\r\r",
		"id: theirs\ndata: e\n\n",
		"retry: 10\n\n",
		"data:f\r\n\n",
	}
	wantData := []string{"a", "b\nc", "d", "e", "f"}
	stream := strings.Join(events, "")
	for seed := range uint64(40) {
		rng := rand.New(rand.NewPCG(seed, 9))
		store := resume.NewMemoryStore(resume.MemoryConfig{})
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/event-stream")
			rc := http.NewResponseController(w)
			for rest := stream; rest != ""; {
				n := 1 + rng.IntN(min(len(rest), 7))
				io.WriteString(w, rest[:n])
				rest = rest[n:]
				if rng.IntN(2) == 0 {
					rc.Flush()
				}
			}
		})
		srv := httptest.NewServer(middleware.NewHandler(h, middleware.ServerConfig{Resume: &middleware.ResumeConfig{Store: store}}))
		resp, err := http.Get(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		srv.Close()
		name := resp.Header.Get(sse.ResumableStreamHeader)
		var data, ids []string
		for ev, err := range gosse.Read(bytes.NewReader(body), nil) {
			if err != nil {
				t.Fatal(err)
			}
			data, ids = append(data, ev.Data), append(ids, ev.LastEventID)
		}
		if strings.Join(data, "|") != strings.Join(wantData, "|") {
			t.Fatalf("seed %d: data %q, want %q\n%q", seed, data, wantData, body)
		}
		for i, id := range ids {
			if want := name + "." + string(rune('1'+i)); id != want {
				t.Fatalf("seed %d: event %d has id %q, want %q", seed, i, id, want)
			}
		}
		if !strings.Contains(string(body), ": comment\n\n") {
			t.Fatalf("seed %d: the comment is gone: %q", seed, body)
		}
		stored, ended, err := store.Read(context.Background(), name, 0)
		if err != nil || !ended || len(stored) != len(wantData) {
			t.Fatalf("seed %d: stored %d events, ended %v, %v", seed, len(stored), ended, err)
		}
		at := 0
		for _, e := range stored {
			k := bytes.Index(body[at:], e.Data)
			if k < 0 {
				t.Fatalf("seed %d: stored event %d %q was not sent as stored", seed, e.Seq, e.Data)
			}
			at += k + len(e.Data)
		}
	}
}
