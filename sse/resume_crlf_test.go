package sse_test

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/streamguard/streamguard/sse"
)

// TestResumeCutBetweenCRAndLF: a CRLF stream cut between the CR and the LF
// of the blank line that ends an event, then resumed: a consumer that
// splits lines at LF only (bufio.Scanner, as openai-go and
// anthropic-sdk-go do) reads every event once, as a spec parser does. The
// continuation's first line used to follow the lone CR: the blank line
// never came, and the next event merged with it or was lost.
func TestResumeCutBetweenCRAndLF(t *testing.T) {
	for _, order := range []string{"id first", "data first"} {
		ev := func(i int) string {
			if order == "id first" {
				return fmt.Sprintf("id: %d\r\ndata: e%d\r\n\r\n", i, i)
			}
			return fmt.Sprintf("data: e%d\r\nid: %d\r\n\r\n", i, i)
		}
		for _, h2 := range []bool{false, true} {
			calls := 0
			srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/event-stream")
				calls++
				if calls == 1 {
					s := ev(1) + ev(2)
					io.WriteString(w, s[:len(s)-1]) // all but the last LF
					w.(http.Flusher).Flush()
					panic(http.ErrAbortHandler)
				}
				if r.Header.Get("Last-Event-ID") != "2" {
					t.Errorf("resumed after %q, want 2", r.Header.Get("Last-Event-ID"))
				}
				io.WriteString(w, ev(3)+ev(4))
			}))
			srv.EnableHTTP2 = h2
			srv.StartTLS()
			c := &http.Client{Transport: sse.NewTransport(srv.Client().Transport, fastResume())}
			resp, err := c.Get(srv.URL)
			if err != nil {
				t.Fatal(err)
			}
			sc := bufio.NewScanner(resp.Body)
			var events []string
			var cur []string
			for sc.Scan() {
				switch line := sc.Text(); {
				case line == "":
					if len(cur) > 0 {
						events = append(events, strings.Join(cur, "+"))
					}
					cur = nil
				case strings.HasPrefix(line, "data: "):
					cur = append(cur, strings.TrimPrefix(line, "data: "))
				case strings.HasPrefix(line, "id: "):
				default:
					t.Errorf("%s, HTTP/2 %v: a line no parser knows: %q", order, h2, line)
				}
			}
			resp.Body.Close()
			srv.Close()
			if got := strings.Join(events, ","); got != "e1,e2,e3,e4" || sc.Err() != nil {
				t.Errorf("%s, HTTP/2 %v: events %q (%v), want e1,e2,e3,e4", order, h2, got, sc.Err())
			}
		}
	}
}

// TestFailureFrameAfterLoneCR: a CRLF stream cut between the CR and the LF
// of its last blank line and not resumed: the failure event comes after the
// missing LF, so an LF-only consumer reads its data line (it read
// "\rdata: ...", and the last event dispatched as the error).
func TestFailureFrameAfterLoneCR(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "data: a\r\n\r")
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler)
	}))
	defer srv.Close()
	cfg := fastResume()
	cfg.FailureEvent = true
	c := &http.Client{Transport: sse.NewTransport(http.DefaultTransport, cfg)}
	resp, err := c.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	got, se := readAll(t, resp)
	var lines []string
	for sc := bufio.NewScanner(strings.NewReader(string(got))); sc.Scan(); {
		lines = append(lines, sc.Text())
	}
	if len(lines) < 3 || lines[0] != "data: a" || lines[1] != "" || !strings.HasPrefix(lines[2], `data: {"error"`) {
		t.Errorf("verdict %v; an LF-only consumer reads %q, want the event, a blank line, the failure event", se, lines)
	}
}

// TestSpliceLFCounted: the LF a resume sends after a lone CR is counted in
// Error.Bytes, the bytes delivered to the reader.
func TestSpliceLFCounted(t *testing.T) {
	ev := func(i int) string { return fmt.Sprintf("id: %d\r\ndata: e%d\r\n\r\n", i, i) }
	h := &scripted{serve: func(a int, w http.ResponseWriter, r *http.Request) bool {
		w.Header().Set("Content-Type", "text/event-stream")
		if a == 0 {
			s := ev(1) + ev(2)
			io.WriteString(w, s[:len(s)-1])
			return true
		}
		io.WriteString(w, ev(1)) // starts over: resume_mismatch
		return false
	}}
	got, se := edgeGet(t, h)
	if se == nil || se.Bytes != int64(len(got)) {
		t.Errorf("delivered %d bytes %q, Error.Bytes %+v", len(got), got, se)
	}
}
