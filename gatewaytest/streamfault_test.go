package gatewaytest_test

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"strings"
	"testing"
	"time"

	"github.com/streamguard/streamguard/gatewaytest"
)

// getBody GETs path and reads the whole body, returning it and the read's
// error.
func getBody(t *testing.T, srv *gatewaytest.Server, path string) ([]byte, error) {
	t.Helper()
	resp := get(t, srv, path)
	return io.ReadAll(resp.Body)
}

// dataEvents counts the SSE events in b that a client dispatches: blocks
// with a data field, ended by an empty line (line ends LF, CR or CRLF).
func dataEvents(b []byte) int {
	s := strings.ReplaceAll(strings.ReplaceAll(string(b), "\r\n", "\n"), "\r", "\n")
	blocks := strings.Split(s, "\n\n")
	n := 0
	for _, blk := range blocks[:len(blocks)-1] { // the last has no empty line after it
		for line := range strings.SplitSeq(blk, "\n") {
			if line == "data" || strings.HasPrefix(line, "data:") {
				n++
				break
			}
		}
	}
	return n
}

const ndjsonRecord = "{\"i\":%d,\"pad\":\"xxxxxxxxxxxxxxxxxxxx\"}\n"

// A model that sets Content-Length: the gateway drops it, as a proxy that
// re-chunks the body does. A cut body is a prefix of what the model wrote,
// with no chunk header inside, and the client sees the cut; a stream that
// ends early ends cleanly.
func TestStreamFaultsWithModelContentLength(t *testing.T) {
	srv := gatewaytest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/x-ndjson")
		w.Header().Set("Content-Length", "200")
		for i := 0; i < 5 && r.Context().Err() == nil; i++ {
			fmt.Fprintf(w, ndjsonRecord, i)
			http.NewResponseController(w).Flush()
		}
	}))
	defer srv.Close()
	first, next := fmt.Sprintf(ndjsonRecord, 0), fmt.Sprintf(ndjsonRecord, 1)

	srv.Script(gatewaytest.Cut(1))
	got, err := getBody(t, srv, "/api/chat")
	rest, ok := strings.CutPrefix(string(got), first)
	if !ok || rest == "" || len(rest) >= len(next) || !strings.HasPrefix(next, rest) || !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("Cut(1): body %q, %v; want a record, half the next and io.ErrUnexpectedEOF", got, err)
	}
	srv.Script(gatewaytest.EndEarly(2))
	got, err = getBody(t, srv, "/api/chat")
	if err != nil || string(got) != first+next {
		t.Errorf("EndEarly(2): body %q, %v; want 2 records and a clean end", got, err)
	}
}

// Over HTTP/1.0 the response is delimited by the connection's close: the
// half event is sent as it is, with no chunk framing, and ends cleanly.
func TestCutHTTP10SendsHalfRaw(t *testing.T) {
	srv := gatewaytest.NewServer(gatewaytest.ChatStream(10))
	defer srv.Close()
	srv.Script(gatewaytest.Cut(2))
	c, err := net.Dial("tcp", strings.TrimPrefix(srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(c, "GET /v1/chat/completions HTTP/1.0\r\nHost: x\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	full := "data: " + gatewaytest.ChatChunk(0) + "\n\ndata: " + gatewaytest.ChatChunk(1) + "\n\ndata: " + gatewaytest.ChatChunk(2) + "\n\n"
	if err != nil || len(resp.TransferEncoding) != 0 || len(body) <= len(full)-len(gatewaytest.ChatChunk(2))-8 ||
		len(body) >= len(full) || !strings.HasPrefix(full, string(body)) || dataEvents(body) != 2 {
		t.Fatalf("Cut(2) over HTTP/1.0: %v, TE %v, body %q; want 2 events and half the third, raw", err, resp.TransferEncoding, body)
	}
}

// unflushed writes three SSE events without flushing and returns.
func unflushed(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/event-stream")
	for i := range 3 {
		fmt.Fprintf(w, "data: %s\n\n", gatewaytest.ChatChunk(i))
	}
}

// Cut and Reset past the model's last event forward all of its events, even
// those it never flushed, and then break the response.
func TestFaultsPastTheEndKeepUnflushedEvents(t *testing.T) {
	for _, f := range []gatewaytest.Fault{gatewaytest.Cut(5), gatewaytest.Reset(5)} {
		t.Run(f.String(), func(t *testing.T) {
			srv := gatewaytest.NewServer(http.HandlerFunc(unflushed))
			defer srv.Close()
			srv.Script(f)
			resp, err := srv.Client().Get(srv.URL + "/v1/chat/completions")
			if err != nil {
				t.Fatalf("%v with the model's 3 events: no response: %v", f, err)
			}
			defer resp.Body.Close()
			got, err := io.ReadAll(resp.Body)
			if n := dataEvents(got); n != 3 || !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Fatalf("%v forwarded %d of the model's 3 events and ended with %v; want 3 and io.ErrUnexpectedEOF", f, n, err)
			}
		})
	}
}

// In an SSE stream only blocks with a data field are events: a keep-alive
// comment, a retry-only or an event-only block does not count.
func TestStreamFaultsCountDataEventsOnly(t *testing.T) {
	model := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		rc := http.NewResponseController(w)
		for i, pre := range []string{": keep-alive\n\n", "retry: 1000\n\n", "event: ping\n\n", "id: 7\n\n"} {
			io.WriteString(w, pre)
			rc.Flush()
			fmt.Fprintf(w, "data: %s\n\n", gatewaytest.ChatChunk(i))
			rc.Flush()
		}
		io.WriteString(w, "data\n\ndata: [DONE]\n\n") // "data" alone is a data field
	})
	srv := gatewaytest.NewServer(model)
	defer srv.Close()
	for after := 1; after <= 5; after++ {
		srv.Script(gatewaytest.EndEarly(after))
		got, err := getBody(t, srv, "/")
		if err != nil || dataEvents(got) != after {
			t.Errorf("EndEarly(%d): %v, %d events in %q", after, err, dataEvents(got), got)
		}
		srv.Script(gatewaytest.Cut(after))
		got, err = getBody(t, srv, "/")
		if err == nil || dataEvents(got) != after {
			t.Errorf("Cut(%d): %v, %d events in %q", after, err, dataEvents(got), got)
		}
	}
}

// With CRLF, CR or mixed line ends, the half event a cut sends is never a
// whole event.
func TestCutHalfEventWithOtherLineEnds(t *testing.T) {
	for _, tc := range []struct{ name, stream string }{
		{"CRLF", "data: a\r\n\r\ndata: b\r\n\r\ndata: c\r\n\r\n"},
		{"CR", "data: a\r\rdata: b\r\rdata: c\r\r"},
		{"LF then CRLF", "data: a\n\r\ndata: b\n\r\ndata: c\n\r\n"},
		{"CRLF then LF", "data: a\r\n\ndata: b\r\n\ndata: c\r\n\n"},
		{"LF then CR", "data: a\n\rdata: b\n\rdata: c\n\r"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := gatewaytest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/event-stream")
				io.WriteString(w, tc.stream) // one write: the half comes from it
			}))
			defer srv.Close()
			srv.Script(gatewaytest.Cut(1))
			got, err := getBody(t, srv, "/")
			if err == nil || dataEvents(got) != 1 || !strings.HasPrefix(tc.stream, string(got)) {
				t.Fatalf("Cut(1): %v, %d complete events in %q; want 1 and half the next", err, dataEvents(got), got)
			}
		})
	}
}

// A 103 Early Hints is passed on, and the fault waits for the final status
// and the Content-Type it comes with.
func TestStreamFaultAfterEarlyHints(t *testing.T) {
	srv := gatewaytest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", "</style.css>; rel=preload")
		w.WriteHeader(http.StatusEarlyHints)
		w.Header().Set("Content-Type", "application/x-ndjson")
		w.WriteHeader(http.StatusCreated)
		for i := 0; i < 5 && r.Context().Err() == nil; i++ {
			fmt.Fprintf(w, ndjsonRecord, i)
			http.NewResponseController(w).Flush()
		}
	}))
	defer srv.Close()
	srv.Script(gatewaytest.EndEarly(2))
	var hints []int
	trace := &httptrace.ClientTrace{Got1xxResponse: func(code int, _ textproto.MIMEHeader) error {
		hints = append(hints, code)
		return nil
	}}
	req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(t.Context(), trace), "GET", srv.URL+"/api/chat", nil)
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	want := fmt.Sprintf(ndjsonRecord, 0) + fmt.Sprintf(ndjsonRecord, 1)
	if len(hints) != 1 || hints[0] != http.StatusEarlyHints || resp.StatusCode != http.StatusCreated || err != nil || string(got) != want {
		t.Fatalf("1xx %v, status %d, %v, body %q; want 103, 201 and 2 records", hints, resp.StatusCode, err, got)
	}
}

// EndEarly(k) on a stream of no more than k events forwards it whole.
func TestEndEarlyPastTheEndChangesNothing(t *testing.T) {
	srv := gatewaytest.NewServer(gatewaytest.ChatStream(2))
	defer srv.Close()
	srv.Script(gatewaytest.EndEarly(3))
	got, err := getBody(t, srv, "/")
	if err != nil || dataEvents(got) != 3 || !strings.HasSuffix(string(got), "data: [DONE]\n\n") {
		t.Fatalf("%v: %q", err, got)
	}
}

// A CRLF split between two writes still ends its event whole: the fault
// forwards the LF with it.
func TestEndEarlyCRLFSplitAcrossWrites(t *testing.T) {
	srv := gatewaytest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		for _, p := range []string{"data: a\r\n\r", "\ndata: b\r\n\r", "\ndata: c\r\n\r\n"} {
			io.WriteString(w, p)
			http.NewResponseController(w).Flush()
		}
	}))
	defer srv.Close()
	srv.Script(gatewaytest.EndEarly(1))
	got, err := getBody(t, srv, "/")
	if err != nil || string(got) != "data: a\r\n\r\n" {
		t.Fatalf("EndEarly(1): %v, %q; want the first event with its CRLF", err, got)
	}
}

// TestCutModelPausing: a model that thinks after the cut's point (here it
// waits on its context) is cut after its events, not held until the
// client gives up; a heartbeat it writes after the point is not taken for
// the next event's half.
func TestCutModelPausing(t *testing.T) {
	for _, beat := range []bool{false, true} {
		srv := gatewaytest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/event-stream")
			for i := range 2 {
				fmt.Fprintf(w, "data: %d\n\n", i)
				http.NewResponseController(w).Flush()
			}
			if beat {
				const hb = ": keep-alive\n\n"
				if n, err := io.WriteString(w, hb); n != len(hb) || err != nil {
					t.Errorf("the heartbeat's write: %d, %v; want it all taken", n, err) // io.Writer: n < len needs an error
				}
			}
			<-r.Context().Done() // thinking until the end
		}))
		srv.Script(gatewaytest.Cut(2))
		done := make(chan string, 1)
		go func() {
			resp, err := srv.Client().Get(srv.URL + "/")
			if err != nil {
				done <- err.Error()
				return
			}
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			done <- fmt.Sprintf("%q %v", b, err)
		}()
		select {
		case got := <-done:
			if want := `"data: 0\n\ndata: 1\n\n" unexpected EOF`; got != want {
				t.Errorf("heartbeat %v: %s, want %s", beat, got, want)
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("heartbeat %v: no cut 20 s after the model paused", beat)
		}
		srv.Close()
	}
}

// TestCutHalfAfterHeartbeat: a heartbeat and the next event after the
// cut's point, in a write of their own or in the write that reaches the
// point: the half is the event's, not the heartbeat's.
func TestCutHalfAfterHeartbeat(t *testing.T) {
	for _, writes := range [][]string{
		{"data: 0\n\n", ": keep-alive\n\ndata: {\"n\":1}\n\n"},
		{"data: 0\n\n: keep-alive keep-alive keep-alive\n\ndata: {\"n\":1}\n\n"},
		{"data: 0\r\r", ": keep-alive\r\rdata: {\"n\":1}\r\r"},
		{"data: 0\r\r: keep-alive\r\rdata: {\"n\":1}\r\r"},
	} {
		srv := gatewaytest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/event-stream")
			for _, s := range writes {
				io.WriteString(w, s)
				http.NewResponseController(w).Flush()
			}
		}))
		srv.Script(gatewaytest.Cut(1))
		resp, err := srv.Client().Get(srv.URL + "/")
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		srv.Close()
		if rest, ok := strings.CutPrefix(string(b), writes[0][:9]); !ok || !strings.HasPrefix(rest, "data: {") || strings.ContainsAny(rest, "\r\n") || err == nil {
			t.Errorf("writes %q: %q, %v; want the event, then half of the next one, then a cut", writes, b, err)
		}
	}
}
