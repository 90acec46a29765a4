package sse_test

import (
	"compress/gzip"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
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
		{"a stream of unnumbered events for a Responses resume", http.MethodPost, "/v1/responses", created + rsp(1, "response.output_text.delta") + rsp(2, "response.output_text.delta"),
			"data: {\"choices\":[]}\n\ndata: [DONE]\n\n", "", true},
		{"a Responses restart after a keepalive", http.MethodPost, "/v1/responses", created + rsp(1, "response.output_text.delta") + rsp(2, "response.output_text.delta"),
			"event: keepalive\ndata: {\"type\":\"keepalive\"}\n\n" + created + rsp(1, "response.output_text.delta") + rsp(2, "response.output_text.delta") + rsp(3, "response.output_text.delta") + rsp(4, "response.completed"), "", true},
		{"sse-id back", http.MethodGet, "/", ev(1) + ev(2), ev(3) + ev(1) + ev(2) + ev(3) + ev(4), "e1 e2 e3", true},
		{"sse-id in order", http.MethodGet, "/", ev(1) + ev(2), ev(3) + "data: x\n\n" + ev(4), "e1 e2 e3 x e4", false},
		{"sse-id back after a jump", http.MethodGet, "/", ev(1) + ev(2), ev(3) + ev(5) + ev(4), "e1 e2 e3 e5", true},
		{"sse-id repeat after a jump", http.MethodGet, "/", ev(1) + ev(2), ev(3) + ev(5) + ev(5), "e1 e2 e3 e5", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, se := cutThenResume(t, tc.method, tc.path, tc.first, tc.cont)
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

// TestResumeLaterHealthy: continuations a healthy server sends are not
// refused by the check of their later events: SSE ids that jump ahead (a
// shared sequence), an empty id field, Responses events without a
// sequence_number (a keepalive; an error, which ends the stream as the
// server's own failure), first in the continuation or later.
func TestResumeLaterHealthy(t *testing.T) {
	rsp := func(seq int) string {
		return fmt.Sprintf("event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"sequence_number\":%d}\n\n", seq)
	}
	const created = "event: response.created\ndata: {\"type\":\"response.created\",\"sequence_number\":0,\"response\":{\"id\":\"resp_1\",\"background\":true}}\n\n"
	const completed = "event: response.completed\ndata: {\"type\":\"response.completed\",\"sequence_number\":%d}\n\n"
	ev := func(i int) string { return fmt.Sprintf("id: %d\ndata: e%d\n\n", i, i) }
	for _, tc := range []struct {
		name, method, path string
		first, cont        string
		reason             streamguard.Reason // "": a clean end
	}{
		{"sse-id jumps ahead", http.MethodGet, "/", ev(100) + ev(101) + "id: 102\ndata: e", ev(102) + ev(105) + ev(106), ""},
		{"sse-id empty id", http.MethodGet, "/", ev(1) + ev(2) + "id: 3\ndata: e", ev(3) + "id:\ndata: x\n\n" + ev(4), ""},
		{"responses keepalive", http.MethodPost, "/v1/responses", created + rsp(1) + "event: response.output_text.delta\ndata: {\"ty",
			rsp(2) + "event: keepalive\ndata: {\"type\":\"keepalive\"}\n\n" + rsp(3) + fmt.Sprintf(completed, 4), ""},
		{"responses keepalive first", http.MethodPost, "/v1/responses", created + rsp(1) + "event: response.output_text.delta\ndata: {\"ty",
			"event: keepalive\ndata: {\"type\":\"keepalive\"}\n\n" + rsp(2) + rsp(3) + fmt.Sprintf(completed, 4), ""},
		{"responses error first", http.MethodPost, "/v1/responses", created + rsp(1) + "event: response.output_text.delta\ndata: {\"ty",
			"event: error\ndata: {\"type\":\"error\",\"code\":\"server_error\",\"message\":\"boom\"}\n\n", streamguard.ReasonModelError},
		{"responses error", http.MethodPost, "/v1/responses", created + rsp(1) + "event: response.output_text.delta\ndata: {\"ty",
			rsp(2) + "event: error\ndata: {\"type\":\"error\",\"code\":\"server_error\",\"message\":\"boom\"}\n\n", streamguard.ReasonModelError},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, se := cutThenResume(t, tc.method, tc.path, tc.first, tc.cont)
			if (tc.reason == "" && se != nil) || (tc.reason != "" && (se == nil || se.Reason != tc.reason)) {
				t.Errorf("verdict %v, want %q", se, tc.reason)
			}
		})
	}
}

// countBudget is a ResumeBudget that allows every resume and counts them.
type countBudget struct{ spent, refunded atomic.Int32 }

func (c *countBudget) Spend() bool { c.spent.Add(1); return true }
func (c *countBudget) Refund()     { c.refunded.Add(1) }

// TestResumeBudgetHeartbeats: continuations that bring only comments (a
// proxy that cuts a long think) went on: the next resume does not draw
// on the budget; ones answered but cut before a byte, or not answered,
// do.
func TestResumeBudgetHeartbeats(t *testing.T) {
	for _, tc := range []struct {
		name  string
		first string // the first answer, cut
		cont  string // each of the continuations but the last
		spent int32
	}{
		{"heartbeats", strictEvent(strictName, 1), ": still thinking\n\n", 0},
		{"nothing", strictEvent(strictName, 1), "", 7},
		{"nothing after a CR", strings.ReplaceAll(strictEvent(strictName, 1), "\n", "\r\n")[:len(strictEvent(strictName, 1))+2], "", 7}, // cut after the last CR: the guard sends its LF
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &scripted{serve: func(i int, w http.ResponseWriter, r *http.Request) bool {
				w.Header().Set("Content-Type", "text/event-stream")
				w.Header().Set(sse.ResumableStreamHeader, strictName)
				switch {
				case i == 0:
					io.WriteString(w, tc.first)
					return true
				case i < 8:
					io.WriteString(w, tc.cont)
					return true
				}
				io.WriteString(w, strictEvent(strictName, 2))
				return false
			}}
			srv := httptest.NewServer(s)
			defer srv.Close()
			budget := &countBudget{}
			cfg := fastResume()
			cfg.Resume.MaxResumes, cfg.Resume.Budget = 20, budget
			c := &http.Client{Transport: sse.NewTransport(http.DefaultTransport, cfg)}
			req, _ := http.NewRequest(http.MethodPost, srv.URL, strings.NewReader(`{}`))
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			if _, se := readAll(t, resp); se != nil {
				t.Fatalf("verdict %v", se)
			}
			if got := budget.spent.Load(); got != tc.spent {
				t.Errorf("%d resumes drew on the budget, want %d", got, tc.spent)
			}
		})
	}
}

// cutThenResume serves first, cut, then cont to the resume, and reads a
// request of method to path (a POST with a background Responses body)
// through the guard: what was delivered, and the verdict.
func cutThenResume(t *testing.T, method, path, first, cont string) ([]byte, *streamguard.Error) {
	t.Helper()
	s := &scripted{serve: func(i int, w http.ResponseWriter, r *http.Request) bool {
		w.Header().Set("Content-Type", "text/event-stream")
		if i == 0 {
			io.WriteString(w, first)
			return true
		}
		io.WriteString(w, cont)
		return false
	}}
	srv := httptest.NewServer(s)
	defer srv.Close()
	var body io.Reader
	if method == http.MethodPost {
		body = strings.NewReader(`{"stream":true,"background":true}`)
	}
	req, _ := http.NewRequest(method, srv.URL+path, body)
	resp, err := edgeClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return readAll(t, resp)
}
