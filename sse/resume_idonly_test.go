package sse_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
)

// TestResumeIDOnlyBlock: a block with an id and no data dispatches no
// event, but moves the last event id (the SSE standard; an EventSource's
// reconnect names it): the sse-id resumer resumes from it, and a
// continuation that starts with such a block, or after it, follows on.
// Before, it was unseen: a cut after it resumed from the id before it,
// and the server's continuation, rightly starting with it or with the
// event after it, was refused as a skip (resume_mismatch).
func TestResumeIDOnlyBlock(t *testing.T) {
	blocks := []string{"id: 1\ndata: e1\n\n", "id: 2\ndata: e2\n\n", "id: 3\n\n", "id: 4\ndata: e4\n\n", "id: 5\ndata: e5\n\n"}
	for cut := range len(blocks) - 1 {
		t.Run(fmt.Sprintf("cut after block %d", cut+1), func(t *testing.T) {
			s := &scripted{serve: func(i int, w http.ResponseWriter, r *http.Request) bool {
				w.Header().Set("Content-Type", "text/event-stream")
				after, _ := strconv.Atoi(r.Header.Get("Last-Event-ID"))
				for k, b := range blocks[after:] {
					io.WriteString(w, b)
					if i == 0 && k == cut {
						return true
					}
				}
				return false
			}}
			srv := httptest.NewServer(s)
			defer srv.Close()
			resp, err := edgeClient().Get(srv.URL)
			if err != nil {
				t.Fatal(err)
			}
			got, se := readAll(t, resp)
			if d := strings.Join(dataLines(got), " "); se != nil || d != "e1 e2 e4 e5" {
				t.Fatalf("delivered %q, verdict %v", d, se)
			}
			if len(s.reqs) != 2 || s.reqs[1].Header.Get("Last-Event-ID") != strconv.Itoa(cut+1) {
				t.Fatalf("%d requests; the resume's Last-Event-ID %q, want %d", len(s.reqs), s.reqs[len(s.reqs)-1].Header.Get("Last-Event-ID"), cut+1)
			}
		})
	}
}
