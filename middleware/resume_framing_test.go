package middleware_test

import (
	"bytes"
	"context"
	"fmt"
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
// writes too, and flushes in between): the client gets exactly the
// handler's bytes with an id line before the blank line of each event with
// data (comments pass without one, and without their id fields, which
// would set the client's last event id to another stream's: each becomes
// an empty comment, its line end kept), every such
// event is stored, and a resume from the start gives the same events with
// the same ids.
func TestResumableFraming(t *testing.T) {
	type event struct{ lines, blank, live string } // live: what is sent of lines, when not all
	events := []event{
		{"data: a\n", "\n", ""},
		{"event: x\r\ndata: b\r\ndata: c\r\n", "\r\n", ""},
		{": comment\n", "\n", ""},
		{"data: d\r", "\r", ""},
		{"id: theirs\ndata: e\n", "\n", ""},
		{"retry: 10\r", "\r\n", ""},
		{"id: upstream-7\r\n: keep\r\n", "\r\n", ":\r\n: keep\r\n"},
		{"retry: 5\nid\r", "\r", "retry: 5\n:\r"},
		{"data:f\r\n", "\n", ""},
		{"", "\n", ""}, // a blank line of its own: an empty block
		{"data\r\n", "\r\n", ""},
		{": c2\n", "\n", ""}, // LF only from here: whole events in a write
		{": c3\n: c4\n", "\n", ""},
		{"id: z\ndata: g\n", "\n", ""},
		{"data: h\n", "\n", ""},
	}
	wantData := []string{"a", "b\nc", "d", "e", "f", "", "g", "h"}
	var stream strings.Builder
	for _, e := range events {
		stream.WriteString(e.lines + e.blank)
	}
	// want is what the client gets: live, or resumed from the start (the
	// events with data only, each ended by its id line and an LF).
	want := func(name string, resumed bool) string {
		var b strings.Builder
		n := 0
		for _, e := range events {
			data := strings.Contains("\n"+e.lines, "\ndata") || strings.Contains("\r"+e.lines, "\rdata")
			if resumed && !data {
				continue
			}
			if e.live != "" && !resumed {
				b.WriteString(e.live)
			} else {
				b.WriteString(e.lines)
			}
			if data {
				n++
				fmt.Fprintf(&b, "id: %s.%d\n", name, n)
			}
			if resumed {
				b.WriteString("\n")
			} else {
				b.WriteString(e.blank)
			}
		}
		return b.String()
	}
	for seed := range uint64(40) {
		rng := rand.New(rand.NewPCG(seed, 9))
		maxWrite := 7 // lines split everywhere
		if seed%2 == 1 {
			maxWrite = 80 // whole events in one write too
		}
		store := resume.NewMemoryStore(resume.MemoryConfig{})
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/event-stream")
			rc := http.NewResponseController(w)
			for rest := stream.String(); rest != ""; {
				n := 1 + rng.IntN(min(len(rest), maxWrite))
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
		name := resp.Header.Get(sse.ResumableStreamHeader)
		if string(body) != want(name, false) {
			t.Fatalf("seed %d: sent\n%q\nwant\n%q", seed, body, want(name, false))
		}
		data, ids := readEvents(t, body)
		if strings.Join(data, "|") != strings.Join(wantData, "|") {
			t.Fatalf("seed %d: data %q, want %q\n%q", seed, data, wantData, body)
		}
		for i, id := range ids {
			if want := name + "." + string(rune('1'+i)); id != want {
				t.Fatalf("seed %d: event %d has id %q, want %q", seed, i, id, want)
			}
		}
		stored, ended, err := store.Read(context.Background(), name, 0)
		if err != nil || !ended || len(stored) != len(wantData) {
			t.Fatalf("seed %d: stored %d events, ended %v, %v", seed, len(stored), ended, err)
		}
		req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
		req.Header.Set(sse.LastEventIDHeader, name+".0")
		resp, err = http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resumed, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		srv.Close()
		if string(resumed) != want(name, true) {
			t.Fatalf("seed %d: resumed from the start\n%q\nwant\n%q", seed, resumed, want(name, true))
		}
		rdata, rids := readEvents(t, resumed)
		if strings.Join(rdata, "|") != strings.Join(data, "|") || strings.Join(rids, "|") != strings.Join(ids, "|") {
			t.Fatalf("seed %d: resumed from the start, got %q %q, want %q %q", seed, rdata, rids, data, ids)
		}
	}
}

// readEvents reads an event stream's data and ids with go-sse.
func readEvents(t *testing.T, body []byte) (data, ids []string) {
	t.Helper()
	for ev, err := range gosse.Read(bytes.NewReader(body), nil) {
		if err != nil {
			t.Fatal(err)
		}
		data, ids = append(data, ev.Data), append(ids, ev.LastEventID)
	}
	return data, ids
}

// TestResumableBOM: a byte-order mark at the start of a stream, which an
// SSE parser drops, is sent ahead of the first event, not as part of it
// (even split across writes), so the first event is stored and given its
// id like the others; bytes that only begin like a mark pass as they are.
// And the id line of a block without data keeps its line end.
func TestResumableBOM(t *testing.T) {
	for _, tc := range []struct {
		name   string
		writes []string
		want   string // with N for the stream's name
	}{
		{"whole", []string{"\xEF\xBB\xBFdata: 1\n\ndata: 2\n\n"}, "\xEF\xBB\xBFdata: 1\nid: N.1\n\ndata: 2\nid: N.2\n\n"},
		{"split", []string{"\xEF", "\xBB", "\xBF", "data: 1\n\n", "data: 2\n\n"}, "\xEF\xBB\xBFdata: 1\nid: N.1\n\ndata: 2\nid: N.2\n\n"},
		// A second mark is the first line's, for the handler's client: it
		// must stay so for ours, which drops the first (were the first
		// dropped here, the second would drop, and "data: x" be an event).
		{"two marks", []string{"\xEF\xBB\xBF\xEF\xBB\xBFdata: x\n\ndata: 1\n\n"}, "\xEF\xBB\xBF\xEF\xBB\xBFdata: x\n\ndata: 1\nid: N.1\n\n"},
		// An id line of a block without data becomes an empty comment with
		// its own line end: removed whole, it would join the CR before it
		// and the LF after it into one CRLF, and take the blank line with
		// it ("data: 1" would be of type x for the client, not when resumed).
		{"id line after a CR", []string{"event: x\rid: 8\n\ndata: 1\n\n"}, "event: x\r:\n\ndata: 1\nid: N.1\n\n"},
		{"not a mark", []string{"\xEF", "\xBB", "x: y\n\n", "data: 1\n\n"}, "\xEF\xBBx: y\n\ndata: 1\nid: N.1\n\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := middleware.NewHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/event-stream")
				for _, s := range tc.writes {
					io.WriteString(w, s)
				}
			}), middleware.ServerConfig{Resume: &middleware.ResumeConfig{}})
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
			name := rec.Header().Get(sse.ResumableStreamHeader)
			if want := strings.ReplaceAll(tc.want, "N.", name+"."); rec.Body.String() != want {
				t.Fatalf("sent %q, want %q", rec.Body.String(), want)
			}
		})
	}
}
