package sse_test

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/streamguard/streamguard"
	"github.com/streamguard/streamguard/sse"
)

// scripted serves attempt i with serve(i, w, r); abort cuts the connection.
type scripted struct {
	mu    sync.Mutex
	n     int
	reqs  []*http.Request
	serve func(i int, w http.ResponseWriter, r *http.Request) (abort bool)
}

func (s *scripted) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	i := s.n
	s.n++
	s.reqs = append(s.reqs, r.Clone(r.Context()))
	s.mu.Unlock()
	if s.serve(i, w, r) {
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler) // cut: the client sees an unexpected EOF
	}
}

func edgeClient() *http.Client {
	return &http.Client{Transport: sse.NewTransport(http.DefaultTransport, fastResume())}
}

// edgeGet serves h on a loopback server and GETs it through edgeClient:
// the body read whole, and the guard's verdict.
func edgeGet(t *testing.T, h http.Handler) ([]byte, *streamguard.Error) {
	t.Helper()
	srv := httptest.NewServer(h)
	defer srv.Close()
	resp, err := edgeClient().Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	return readAll(t, resp)
}

// dataLines are the data values a line-based consumer (bufio, as go-openai
// and most SDKs) sees.
func dataLines(b []byte) []string {
	var out []string
	sc := bufio.NewScanner(strings.NewReader(string(b)))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
			out = append(out, v)
		}
	}
	return out
}

// TestResumeLongID: a stream is not resumed from an id longer than 1 KiB
// (which it would have sent cut, and compared cut with the continuation's,
// so that a server starting over went unseen): the events are delivered
// once each, and the stream ends with its failure.
func TestResumeLongID(t *testing.T) {
	long := strings.Repeat("k", 1100)
	id := func(i int) string { return long + fmt.Sprintf("-%d", i) }
	ev := func(i int) string { return "id: " + id(i) + "\ndata: e" + fmt.Sprint(i) + "\n\n" }
	h := &scripted{serve: func(i int, w http.ResponseWriter, r *http.Request) bool {
		w.Header().Set("Content-Type", "text/event-stream")
		from := 1
		if last := r.Header.Get("Last-Event-ID"); last != "" {
			for k := 1; k <= 5; k++ {
				if last == id(k) {
					from = k + 1
				}
			}
			// an unknown id: start over, as many servers do
		}
		for k := from; k <= 5; k++ {
			io.WriteString(w, ev(k))
			if i == 0 && k == 3 {
				return true
			}
		}
		return false
	}}
	got, se := edgeGet(t, h)
	if len(h.reqs) != 1 {
		t.Errorf("%d requests: a resume from an id of %d bytes (Last-Event-ID of %d)", len(h.reqs), len(id(3)), len(h.reqs[1].Header.Get("Last-Event-ID")))
	}
	if d := dataLines(got); strings.Join(d, ",") != "e1,e2,e3" || se == nil {
		t.Errorf("delivered events %v (verdict %v), want e1..e3 each once and the failure", d, se)
	}
}

// TestResumeBOMOnContinuation: a continuation that starts with a
// byte-order mark (allowed at the start of any event stream) has it
// dropped: in the middle of the spliced stream no consumer would strip it,
// and the event's first field would be lost.
func TestResumeBOMOnContinuation(t *testing.T) {
	h := &scripted{serve: func(i int, w http.ResponseWriter, r *http.Request) bool {
		w.Header().Set("Content-Type", "text/event-stream")
		if i == 0 {
			io.WriteString(w, "\ufeffid: 1\ndata: a\n\n")
			return true
		}
		io.WriteString(w, "\ufeffdata: b\nid: 2\n\ndata: c\nid: 3\n\n")
		return false
	}}
	got, se := edgeGet(t, h)
	if se != nil {
		t.Fatalf("verdict %v", se)
	}
	if strings.Count(string(got), "\ufeff") > 1 || strings.Join(dataLines(got), ",") != "a,b,c" {
		t.Errorf("delivered %q: data %v, want a,b,c and no BOM after the stream's start", got, dataLines(got))
	}
}

// specEvents parses an event stream as the WHATWG spec does and returns the
// data of each dispatched event.
func specEvents(b []byte) []string {
	s := strings.TrimPrefix(string(b), "\ufeff")
	var out, data []string
	has := false
	for len(s) > 0 {
		i := strings.IndexAny(s, "\r\n")
		line := s
		if i < 0 {
			break // an incomplete line at the end is discarded
		}
		line = s[:i]
		if s[i] == '\r' && i+1 < len(s) && s[i+1] == '\n' {
			s = s[i+2:]
		} else {
			s = s[i+1:]
		}
		if line == "" {
			if has {
				out = append(out, strings.Join(data, "\n"))
			}
			data, has = nil, false
			continue
		}
		name, val, _ := strings.Cut(line, ":")
		val = strings.TrimPrefix(val, " ")
		if name == "data" {
			data, has = append(data, val), true
		}
	}
	return out
}

// TestResumeCutEverywhere cuts a stream of ids at every byte, with each
// kind of line end, ids before and after the data, comments, an event
// without an id and lone CRs amid LF lines: every event comes at most once
// and in order, and all of them when the stream ends well.
func TestResumeCutEverywhere(t *testing.T) {
	type variant struct {
		name string
		ev   func(i int) string
	}
	variants := []variant{
		{"lf id-first", func(i int) string { return fmt.Sprintf("id: %d\ndata: e%d\n\n", i, i) }},
		{"lf id-last", func(i int) string { return fmt.Sprintf("data: e%d\nid: %d\n\n", i, i) }},
		{"crlf", func(i int) string { return fmt.Sprintf("id: %d\r\ndata: e%d\r\n\r\n", i, i) }},
		{"cr", func(i int) string { return fmt.Sprintf("data: e%d\rid: %d\r\r", i, i) }},
		{"lone cr amid lf", func(i int) string { return fmt.Sprintf("id: %d\rdata: e%d\n\n", i, i) }},
		{"multi-line", func(i int) string { return fmt.Sprintf(": c\nid: %d\ndata: e%d\ndata: x\n\n", i, i) }},
		{"no id on 3", func(i int) string {
			if i == 3 {
				return "data: e3\n\n"
			}
			return fmt.Sprintf("id: %d\ndata: e%d\n\n", i, i)
		}},
	}
	const n = 5
	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			var full strings.Builder
			var want []string
			for i := 1; i <= n; i++ {
				full.WriteString(v.ev(i))
				want = append(want, specEvents([]byte(v.ev(i)))...)
			}
			for off := 1; off < full.Len(); off++ {
				h := &scripted{serve: func(a int, w http.ResponseWriter, r *http.Request) bool {
					w.Header().Set("Content-Type", "text/event-stream")
					from := 1
					if last := r.Header.Get("Last-Event-ID"); last != "" {
						fmt.Sscan(last, &from)
						from++
					}
					if a == 0 {
						io.WriteString(w, full.String()[:off])
						return true
					}
					for i := from; i <= n; i++ {
						io.WriteString(w, v.ev(i))
					}
					return false
				}}
				got, se := edgeGet(t, h)
				evs := specEvents(got)
				// Every event at most once and in order; all of them when
				// the stream ended well.
				for i, e := range evs {
					if i >= len(want) || e != want[i] {
						t.Errorf("cut at %d: events %q, want a prefix of %q (verdict %v)\n%q", off, evs, want, se, got)
						break
					}
				}
				if se == nil && len(evs) != len(want) {
					t.Errorf("cut at %d: success with events %q, want %q", off, evs, want)
				}
			}
		})
	}
}

// TestResumeErrorEventThenRestart: a Resumable-Stream continuation may
// start with an error event without an id (the server's failure of the
// resume); the event after it is checked as the first would be: here the
// server then starts the stream over, and nothing of that is delivered.
func TestResumeErrorEventThenRestart(t *testing.T) {
	name := strings.Repeat("a", 32)
	ev := func(i int) string { return fmt.Sprintf("id: %s.%d\ndata: e%d\n\n", name, i, i) }
	h := &scripted{serve: func(a int, w http.ResponseWriter, r *http.Request) bool {
		w.Header().Set("Content-Type", "text/event-stream")
		w.Header().Set("Resumable-Stream", name)
		if a == 0 {
			io.WriteString(w, ev(1)+ev(2))
			return true
		}
		io.WriteString(w, "event: error\ndata: {\"error\":{\"message\":\"x\"}}\n\n"+ev(1)+ev(2)+ev(3))
		return false
	}}
	srv := httptest.NewServer(h)
	defer srv.Close()
	resp, err := edgeClient().Post(srv.URL, "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	got, se := readAll(t, resp)
	var evs []string
	for _, e := range specEvents(got) {
		if strings.HasPrefix(e, "e") {
			evs = append(evs, e)
		}
	}
	if strings.Join(evs, ",") != "e1,e2" {
		t.Errorf("events %v (verdict %v), want e1,e2 only: the stream should end at the error event\n%q", evs, se, got)
	}
}

// TestResumeUnsendableID: a stream is not resumed from an id with a
// control character (valid SSE, but no header can carry it), instead of
// trying and failing in the transport, with its backoff, until MaxResumes.
func TestResumeUnsendableID(t *testing.T) {
	h := &scripted{serve: func(a int, w http.ResponseWriter, r *http.Request) bool {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "id: 1\x01\ndata: e1\n\n")
		return true
	}}
	srv := httptest.NewServer(h)
	defer srv.Close()
	resp, err := edgeClient().Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	_, se := readAll(t, resp)
	if se == nil || se.Resumes > 1 {
		t.Errorf("verdict %v: %d resumes of a request that cannot be sent (server saw %d requests)", se, se.Resumes, len(h.reqs))
	}
}

// TestResumeResponsesRequest: the Responses resume keeps a Host the
// request set (a virtual host behind an address), as the other resumers
// do, and the escapes of its path (%2F): its GET goes to the same path's
// response, at the same host.
func TestResumeResponsesRequest(t *testing.T) {
	h := &scripted{serve: func(a int, w http.ResponseWriter, r *http.Request) bool {
		w.Header().Set("Content-Type", "text/event-stream")
		if a == 0 {
			io.WriteString(w, `data: {"type":"response.created","sequence_number":0,"response":{"id":"resp_1","background":true}}`+"\n\n")
			return true
		}
		io.WriteString(w, `data: {"type":"response.completed","sequence_number":1}`+"\n\n")
		return false
	}}
	srv := httptest.NewServer(h)
	defer srv.Close()
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/v1/deployments/org%2Fmodel/responses?api-version=2025-04-01&tag=a;b&x=%7e&stream=true&starting%5Fafter=9", strings.NewReader("{}"))
	req.Host = "api.example.test"
	resp, err := edgeClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, se := readAll(t, resp)
	if se != nil || len(h.reqs) != 2 {
		t.Fatalf("verdict %v after %d requests", se, len(h.reqs))
	}
	if got := h.reqs[1].Host; got != "api.example.test" {
		t.Errorf("resume %s %s went to Host %q, want %q", h.reqs[1].Method, h.reqs[1].URL, got, "api.example.test")
	}
	if got, want := h.reqs[1].URL.EscapedPath(), "/v1/deployments/org%2Fmodel/responses/resp_1"; got != want {
		t.Errorf("resume went to %q, want %q", got, want)
	}
	// The query's own pairs as sent (one with a ';' too, which Go's
	// parser drops), the stream's in place of any the request had.
	if got, want := h.reqs[1].URL.RawQuery, "api-version=2025-04-01&tag=a;b&x=%7e&stream=true&starting_after=0"; got != want {
		t.Errorf("resume query %q, want %q", got, want)
	}
}

// TestResumeLoneCR: an event whose fields are separated by a lone CR amid
// LF-ended lines is one event with an id to the consumer (CR ends a line)
// and to the resumer: the resume asks for the events after it, and it does
// not come again.
func TestResumeLoneCR(t *testing.T) {
	ev := func(i int) string {
		if i == 2 {
			return "id: 2\rdata: e2\n\n"
		}
		return fmt.Sprintf("id: %d\ndata: e%d\n\n", i, i)
	}
	h := &scripted{serve: func(a int, w http.ResponseWriter, r *http.Request) bool {
		w.Header().Set("Content-Type", "text/event-stream")
		from := 1
		if last := r.Header.Get("Last-Event-ID"); last != "" {
			fmt.Sscan(last, &from)
			from++
		}
		for i := from; i <= 4; i++ {
			io.WriteString(w, ev(i))
			if a == 0 && i == 2 {
				io.WriteString(w, "id: 3\ndata: e") // cut inside event 3
				return true
			}
		}
		return false
	}}
	got, se := edgeGet(t, h)
	if evs := specEvents(got); strings.Join(evs, ",") != "e1,e2,e3,e4" {
		t.Errorf("events %q (verdict %v, resume Last-Event-ID %q), want e1..e4 each once", evs, se, h.reqs[len(h.reqs)-1].Header.Get("Last-Event-ID"))
	}
}

// TestResumeBackoffGivesUp: a Backoff that gives up after one resume ends
// the stream with that said, not as a deadline leaving no time (there is
// none) nor as "no resume was possible" after one.
func TestResumeBackoffGivesUp(t *testing.T) {
	h := &scripted{serve: func(i int, w http.ResponseWriter, r *http.Request) bool {
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprintf(w, "id: %d\ndata: e%d\n\n", i+1, i+1)
		return true
	}}
	srv := httptest.NewServer(h)
	defer srv.Close()
	cfg := sse.Config{Resume: sse.ResumeConfig{Backoff: func() backoff.BackOff {
		return backoff.WithMaxRetries(backoff.NewConstantBackOff(time.Millisecond), 1)
	}}}
	c := &http.Client{Transport: sse.NewTransport(http.DefaultTransport, cfg)}
	resp, err := c.Get(srv.URL) // no deadline
	if err != nil {
		t.Fatal(err)
	}
	_, se := readAll(t, resp)
	if se == nil || se.Resumes != 1 || strings.Contains(se.Message, "deadline") || strings.Contains(se.Message, "no resume was possible") ||
		!strings.Contains(se.Message, "no resume after 1: the resume backoff gave up") {
		t.Fatalf("%+v: want one resume, then the backoff's giving up said", se)
	}
}
