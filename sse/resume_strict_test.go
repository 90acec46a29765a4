package sse_test

import (
	"compress/gzip"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/streamguard/streamguard"
	"github.com/streamguard/streamguard/internal/streamstat"
	"github.com/streamguard/streamguard/sse"
)

const strictName = "0123456789abcdef0123456789abcdef"

// strictEvent is event k of the stream strictName.
func strictEvent(name string, k int) string {
	return fmt.Sprintf("id: %s.%d\ndata: t%d\n\n", name, k, k)
}

// TestResumeFromCallersLastEventID: a request that is itself a resume
// (Last-Event-ID "{stream}.5", a caller's reconnect) whose answer is cut
// before its first whole event resumes after event 5 again, not from the
// stream's start: events 1 to 5 are not delivered a second time.
func TestResumeFromCallersLastEventID(t *testing.T) {
	s := &scripted{serve: func(i int, w http.ResponseWriter, r *http.Request) bool {
		_, after, ok := sse.ParseEventID(r.Header.Get(sse.LastEventIDHeader))
		if !ok {
			t.Errorf("request %d: Last-Event-ID %q", i, r.Header.Get(sse.LastEventIDHeader))
			return true
		}
		w.Header().Set("Content-Type", "text/event-stream")
		w.Header().Set(sse.ResumableStreamHeader, strictName)
		if i == 0 {
			io.WriteString(w, "id: "+strictName+".6\ndata: {\"ch") // cut inside the first event
			return true
		}
		for k := int(after) + 1; k <= 8; k++ {
			io.WriteString(w, strictEvent(strictName, k))
		}
		return false
	}}
	srv := httptest.NewServer(s)
	defer srv.Close()
	req, _ := http.NewRequest(http.MethodPost, srv.URL, strings.NewReader(`{}`))
	req.Header.Set(sse.LastEventIDHeader, strictName+".5")
	resp, err := edgeClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	got, se := readAll(t, resp)
	if se != nil {
		t.Fatalf("verdict %v", se)
	}
	if d := dataLines(got); strings.Join(d, " ") != "t6 t7 t8" {
		t.Errorf("delivered %q, want t6 t7 t8", d)
	}
	if len(s.reqs) != 2 || s.reqs[1].Header.Get(sse.LastEventIDHeader) != strictName+".5" {
		t.Errorf("%d requests", len(s.reqs))
	}
}

// TestResumeContinuationChecked: every event of a continuation must be
// the one after the last delivered: a continuation that goes back, skips
// one or turns to another stream after its first event ends with
// resume_mismatch, the stray event not delivered.
func TestResumeContinuationChecked(t *testing.T) {
	const other = "ffffffffffffffffffffffffffffffff"
	for _, tc := range []struct {
		name string
		rest []string // the continuation's events after its first, 4
		want string   // what the consumer gets
	}{
		{"back", []string{strictEvent(strictName, 2), strictEvent(strictName, 3)}, "t1 t2 t3 t4"},
		{"gap", []string{strictEvent(strictName, 7)}, "t1 t2 t3 t4"},
		{"other stream", []string{strictEvent(other, 5)}, "t1 t2 t3 t4"},
		{"no id", []string{"data: t5\n\n"}, "t1 t2 t3 t4"},
		{"in order", []string{strictEvent(strictName, 5), "event: error\ndata: {\"error\":\"budget\"}\n\n"}, "t1 t2 t3 t4 t5 {\"error\":\"budget\"}"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &scripted{serve: func(i int, w http.ResponseWriter, r *http.Request) bool {
				w.Header().Set("Content-Type", "text/event-stream")
				w.Header().Set(sse.ResumableStreamHeader, strictName)
				if i == 0 {
					for k := 1; k <= 3; k++ {
						io.WriteString(w, strictEvent(strictName, k))
					}
					io.WriteString(w, "id: "+strictName+".4\ndata: t") // cut inside event 4
					return true
				}
				io.WriteString(w, strictEvent(strictName, 4)+strings.Join(tc.rest, ""))
				return false
			}}
			srv := httptest.NewServer(s)
			defer srv.Close()
			req, _ := http.NewRequest(http.MethodPost, srv.URL, strings.NewReader(`{}`))
			resp, err := edgeClient().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			got, se := readAll(t, resp)
			if d := strings.Join(dataLines(got), " "); d != tc.want {
				t.Errorf("delivered %q, want %q", d, tc.want)
			}
			if tc.name == "in order" {
				if se == nil || se.Reason != streamguard.ReasonModelError {
					t.Errorf("verdict %v, want the server's error", se)
				}
				return
			}
			if se == nil || se.Reason != streamguard.ReasonResumeMismatch {
				t.Errorf("verdict %v, want resume_mismatch", se)
			}
		})
	}
}

// TestResumeEncodedContinuation: a resume answered in a content coding
// (the caller asked for gzip itself) is not read as events: the stream
// ends after that one resume, saying why.
func TestResumeEncodedContinuation(t *testing.T) {
	s := &scripted{serve: func(i int, w http.ResponseWriter, r *http.Request) bool {
		w.Header().Set("Content-Type", "text/event-stream")
		w.Header().Set(sse.ResumableStreamHeader, strictName)
		if i == 0 {
			io.WriteString(w, strictEvent(strictName, 1)+"id: "+strictName+".2\ndata: t")
			return true
		}
		w.Header().Set("Content-Encoding", "gzip")
		zw := gzip.NewWriter(w)
		io.WriteString(zw, strictEvent(strictName, 2))
		zw.Close()
		return false
	}}
	srv := httptest.NewServer(s)
	defer srv.Close()
	req, _ := http.NewRequest(http.MethodPost, srv.URL, strings.NewReader(`{}`))
	req.Header.Set("Accept-Encoding", "gzip")
	resp, err := edgeClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	got, se := readAll(t, resp)
	if d := dataLines(got); len(d) != 1 || se == nil || se.Resumes != 1 || !strings.Contains(se.Message, "content coding") {
		t.Errorf("delivered %q, verdict %+v", d, se)
	}
}

// TestResumeLaterEventsChecked: the later events of a Responses or an
// SSE-id continuation are checked as its first: one that repeats or goes
// back ends the stream with resume_mismatch, undelivered; a continuation
// in order, with an id-less event amid counting ids, completes.
func TestResumeLaterEventsChecked(t *testing.T) {
	const created = "event: response.created\ndata: {\"type\":\"response.created\",\"sequence_number\":0,\"response\":{\"id\":\"resp_1\",\"background\":true}}\n\n"
	rsp := func(seq int, typ string) string {
		return fmt.Sprintf("event: %s\ndata: {\"type\":%q,\"sequence_number\":%d}\n\n", typ, typ, seq)
	}
	ev := func(i int) string { return fmt.Sprintf("id: %d\ndata: e%d\n\n", i, i) }
	for _, tc := range []struct {
		name, method, path string
		first, cont        string
		want               string // data delivered
		mismatch           bool
	}{
		{"responses back", http.MethodPost, "/v1/responses", created + rsp(1, "response.output_text.delta") + rsp(2, "response.output_text.delta"),
			rsp(3, "response.output_text.delta") + rsp(3, "response.output_text.delta") + rsp(4, "response.completed"), "", true},
		{"responses in order", http.MethodPost, "/v1/responses", created + rsp(1, "response.output_text.delta") + rsp(2, "response.output_text.delta"),
			rsp(3, "response.output_text.delta") + rsp(4, "response.completed"), "", false},
		{"sse-id back", http.MethodGet, "/", ev(1) + ev(2), ev(3) + ev(1) + ev(2) + ev(3) + ev(4), "e1 e2 e3", true},
		{"sse-id in order", http.MethodGet, "/", ev(1) + ev(2), ev(3) + "data: x\n\n" + ev(4), "e1 e2 e3 x e4", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &scripted{serve: func(i int, w http.ResponseWriter, r *http.Request) bool {
				w.Header().Set("Content-Type", "text/event-stream")
				if i == 0 {
					io.WriteString(w, tc.first)
					return true
				}
				io.WriteString(w, tc.cont)
				return false
			}}
			srv := httptest.NewServer(s)
			defer srv.Close()
			var body io.Reader
			if tc.method == http.MethodPost {
				body = strings.NewReader(`{"stream":true,"background":true}`)
			}
			req, _ := http.NewRequest(tc.method, srv.URL+tc.path, body)
			resp, err := edgeClient().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			got, se := readAll(t, resp)
			if tc.mismatch != (se != nil && se.Reason == streamguard.ReasonResumeMismatch) || (!tc.mismatch && se != nil) {
				t.Errorf("verdict %v", se)
			}
			if tc.want != "" {
				if d := strings.Join(dataLines(got), " "); d != tc.want {
					t.Errorf("delivered %q, want %q", d, tc.want)
				}
			}
			if strings.HasPrefix(tc.name, "responses") {
				if n := strings.Count(string(got), `"sequence_number":3`); n != 1 {
					t.Errorf("event 3 delivered %d times", n)
				}
			}
		})
	}
}

// TestResumeResponsesNestedSequence: a Responses event whose item holds a
// "sequence_number" of its own before the event's (an MCP tool's schema,
// as openai-python orders the fields) is resumed after the event's, and
// its continuation follows on.
func TestResumeResponsesNestedSequence(t *testing.T) {
	const created = "event: response.created\ndata: {\"type\":\"response.created\",\"sequence_number\":0,\"response\":{\"id\":\"resp_1\",\"background\":true}}\n\n"
	item := func(seq int) string {
		return "event: response.output_item.added\n" +
			`data: {"item":{"type":"mcp_list_tools","tools":[{"name":"t","input_schema":{"examples":[{"sequence_number":1}]}}]},"output_index":0,"sequence_number":` +
			strconv.Itoa(seq) + `,"type":"response.output_item.added"}` + "\n\n"
	}
	s := &scripted{serve: func(i int, w http.ResponseWriter, r *http.Request) bool {
		w.Header().Set("Content-Type", "text/event-stream")
		if i == 0 {
			io.WriteString(w, created+item(1)+item(2))
			return true
		}
		if got := r.URL.Query().Get("starting_after"); got != "2" {
			t.Errorf("starting_after=%s, want 2", got)
		}
		io.WriteString(w, item(3)+"event: response.completed\ndata: {\"type\":\"response.completed\",\"sequence_number\":4}\n\n")
		return false
	}}
	srv := httptest.NewServer(s)
	defer srv.Close()
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/v1/responses", strings.NewReader(`{"stream":true,"background":true}`))
	resp, err := edgeClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if _, se := readAll(t, resp); se != nil {
		t.Errorf("verdict %v", se)
	}
}

// TestResumeMismatchNoGenAIStats: the GenAI facts of a continuation that
// was refused (a restart) are not gathered: its finish reason and usage
// were never delivered.
func TestResumeMismatchNoGenAIStats(t *testing.T) {
	withID := func(i int, ev string) string { return "id: " + strconv.Itoa(i) + "\n" + ev }
	s := &scripted{serve: func(i int, w http.ResponseWriter, r *http.Request) bool {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, withID(1, genChatFirst)+withID(2, genChatContent(1)))
		if i == 0 {
			return true
		}
		io.WriteString(w, withID(3, genChatFinish)+withID(4, genChatUsage)+genDone)
		return false
	}}
	srv := httptest.NewServer(s)
	defer srv.Close()
	resp, err := edgeClient().Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	_, err = io.Copy(io.Discard, resp.Body)
	if se := streamguard.FromError(err); se == nil || se.Reason != streamguard.ReasonResumeMismatch {
		t.Fatalf("verdict %v", err)
	}
	g := resp.Body.(streamstat.Reporter).StreamStats().GenAI
	if g == nil || len(g.FinishReasons) != 0 || g.InputTokens != -1 {
		t.Errorf("GenAI %+v", g)
	}
	resp.Body.Close()
}
