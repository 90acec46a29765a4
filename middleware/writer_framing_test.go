package middleware_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/streamguard/streamguard"
	"github.com/streamguard/streamguard/middleware"
)

// sseEvent is an event as the SSE spec's parsing algorithm dispatches it.
type sseEvent struct {
	typ, data, id string
}

// parseSSE is the SSE spec's "interpret an event stream" algorithm, as the
// reference the writer's framing is checked against: lines end at CR, LF or
// CRLF; a blank line dispatches the event if it has data; comments are
// counted and otherwise ignored. An event still open at the end is dropped,
// as the spec says.
func parseSSE(b []byte) (events []sseEvent, comments int) {
	var (
		data    []string
		typ, id string
		hasData bool
	)
	for len(b) > 0 {
		i := bytes.IndexAny(b, "\r\n")
		if i < 0 {
			break // an incomplete last line is never processed
		}
		line := string(b[:i])
		if b[i] == '\r' && i+1 < len(b) && b[i+1] == '\n' {
			i++
		}
		b = b[i+1:]
		if line == "" {
			if hasData {
				events = append(events, sseEvent{typ: typ, data: strings.Join(data, "\n"), id: id})
			}
			data, typ, hasData = nil, "", false
			continue
		}
		if line[0] == ':' {
			comments++
			continue
		}
		name, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch name {
		case "data":
			data, hasData = append(data, value), true
		case "event":
			typ = value
		case "id":
			if !strings.Contains(value, "\x00") {
				id = value
			}
		}
	}
	return events, comments
}

// writeFlush writes s and flushes it, as a streaming handler does.
func writeFlush(w http.ResponseWriter, s string) {
	io.WriteString(w, s)
	http.NewResponseController(w).Flush()
}

// A heartbeat never lands between the CR and the LF of the handler's CRLF:
// "data: N\r", a pause longer than the heartbeat, "\ndata: tail\r\n\r\n" is
// one event, "N\ntail" (the attack's break 6).
func TestHeartbeatSplitCRLFInsideEvent(t *testing.T) {
	protocols(t, func(t *testing.T, h2 bool) {
		const hb = 5 * time.Millisecond
		srv := serve(t, h2, middleware.ServerConfig{Heartbeat: hb}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/event-stream")
			writeFlush(w, "data: first\r\n\r\n")
			writeFlush(w, "data: N\r")
			// Many heartbeat periods: before the fix one was written here.
			// Real sockets keep this on the wall clock; a slow machine only
			// gives the heartbeat more time to misbehave, never a false
			// failure.
			time.Sleep(20 * hb)
			writeFlush(w, "\ndata: tail\r\n\r\n")
		}))
		resp, err := srv.Client().Get(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		events, _ := parseSSE(b)
		want := []sseEvent{{data: "first"}, {data: "N\ntail"}}
		if !equalEvents(events, want) {
			t.Fatalf("stream %q parses as %q, want %q", b, events, want)
		}
	})
}

// A heartbeat written after a CR that ended an event swallows the handler's
// following LF, which would otherwise reach the client as a line end of its
// own after the heartbeat.
func TestHeartbeatAfterCREndedEvent(t *testing.T) {
	protocols(t, func(t *testing.T, h2 bool) {
		seen := make(chan struct{})
		srv := serve(t, h2, middleware.ServerConfig{Heartbeat: 5 * time.Millisecond},
			afterHeartbeat("data: one\r\n\r", "\ndata: two\r\rdata: three\n\n", seen))
		got := readPastHeartbeat(t, srv, seen)
		// However many heartbeats came, the first follows the handler's
		// CR and the handler's LF after the last one is gone.
		if !strings.HasPrefix(string(got), "data: one\r\n\r: keep-alive\n\n") ||
			!strings.HasSuffix(string(got), ": keep-alive\n\ndata: two\r\rdata: three\n\n") {
			t.Fatalf("stream %q", got)
		}
		events, comments := parseSSE(got)
		if want := []sseEvent{{data: "one"}, {data: "two"}, {data: "three"}}; !equalEvents(events, want) || comments == 0 {
			t.Fatalf("stream %q parses as %q and %d comments", got, events, comments)
		}
	})
}

// afterHeartbeat is a stream handler that writes first, waits until the
// client has seen a heartbeat (seen closed), and writes rest.
func afterHeartbeat(first, rest string, seen <-chan struct{}) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		writeFlush(w, first)
		select {
		case <-seen:
		case <-r.Context().Done():
			return
		}
		writeFlush(w, rest)
	}
}

// readPastHeartbeat reads srv's stream until a heartbeat, closes seen so
// that the handler goes on, and returns the whole stream.
func readPastHeartbeat(t *testing.T, srv *httptest.Server, seen chan struct{}) []byte {
	t.Helper()
	resp, err := srv.Client().Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	var got []byte
	for !bytes.Contains(got, []byte(": keep-alive\n\n")) {
		line, err := br.ReadBytes('\n')
		got = append(got, line...)
		if err != nil {
			t.Fatalf("no heartbeat in %q: %v", got, err)
		}
	}
	close(seen)
	rest, err := io.ReadAll(br)
	if err != nil {
		t.Fatal(err)
	}
	return append(got, rest...)
}

// writeErrorAfter serves a stream whose handler writes (and flushes) each
// of writes and then calls WriteError, and returns what the client read.
func writeErrorAfter(t *testing.T, h2 bool, writes ...string) ([]byte, error) {
	t.Helper()
	srv := serve(t, h2, middleware.ServerConfig{}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		for _, s := range writes {
			writeFlush(w, s)
		}
		middleware.WriteError(w, r, &streamguard.Error{Source: streamguard.SourceModel, Reason: streamguard.ReasonModelError, Message: "boom"})
	}))
	resp, err := srv.Client().Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	return io.ReadAll(resp.Body)
}

// After "data: partial\r" and then "\n", the event is still open: WriteError
// must not write its failure frame into it (the attack's break 7). The
// response is aborted instead, so the client sees a broken stream, never an
// event whose data is "partial\n{...}".
func TestWriteErrorAfterSplitCRLF(t *testing.T) {
	protocols(t, func(t *testing.T, h2 bool) {
		b, err := writeErrorAfter(t, h2, "data: whole\r\n\r\n", "data: partial\r", "\n")
		if err == nil {
			t.Errorf("the body %q ended cleanly: an open event must abort the response", b)
		}
		events, _ := parseSSE(append(b, "\n\n"...)) // as if whatever came had ended
		for _, ev := range events {
			if ev.typ == "error" || strings.Contains(ev.data, "partial") && strings.Contains(ev.data, "{") {
				t.Fatalf("a failure frame merged into the open event: %q", b)
			}
		}
	})
}

// With the CRLF split the other way, the event is closed by the handler's
// "\r\n\r" and then "\n": WriteError writes its frame, and it parses as one
// error event of JSON data after the handler's events.
func TestWriteErrorAfterEventEndedByCR(t *testing.T) {
	protocols(t, func(t *testing.T, h2 bool) {
		b, err := writeErrorAfter(t, h2, "data: whole\r\n\r", "\n")
		if err != nil {
			t.Fatal(err)
		}
		events, _ := parseSSE(b)
		if len(events) != 2 || events[0].data != "whole" || events[1].typ != "error" || !json.Valid([]byte(events[1].data)) {
			t.Fatalf("stream %q parses as %q", b, events)
		}
	})
}

func equalEvents(a, b []sseEvent) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// fuzzTokens are the pieces a fuzzed handler's stream is built from, so
// that random input makes fields, comments and every kind of line end.
var fuzzTokens = []string{"data: ", "data:", "event: ", "id: ", ": c", "\r", "\n", "\r\n", "x", "y", "{}", "retry: 5"}

// FuzzWriterFraming writes a random event stream through the server's
// writer in randomly split writes, with heartbeats injected at random
// points, and optionally a failure at the end. The SSE spec's parser must
// see exactly the handler's events, in order (heartbeats are comments),
// plus, when a failure frame was written, one error event of JSON data.
func FuzzWriterFraming(f *testing.F) {
	f.Add([]byte{0, 8, 5, 6, 0, 9, 7, 7}, []byte{0x10, 0x13, 0x31, 0x40})
	f.Add([]byte{0, 8, 5, 0, 9, 7, 7}, []byte{0x12, 0x10, 0x0f, 0x40}) // "data: x\r" | heartbeat | "\n..."
	f.Add([]byte{0, 8, 7, 5, 6, 0, 9}, []byte{0x19, 0x10, 0x4f})
	f.Add([]byte{4, 6, 6, 1, 10, 5, 5, 2, 8, 6, 0, 8, 7, 7}, []byte{0x11, 0x31, 0x12, 0x13, 0x4f})
	f.Fuzz(func(t *testing.T, tokens, plan []byte) {
		var stream []byte
		for _, b := range tokens {
			stream = append(stream, fuzzTokens[int(b)%len(fuzzTokens)]...)
		}
		rec := httptest.NewRecorder()
		w := middleware.NewSSEWriterForTest(rec)
		rest := stream
		for _, p := range plan {
			n := min(1+int(p&0x0f), len(rest))
			if n, err := w.Write(rest[:n]); err != nil || n != min(1+int(p&0x0f), len(rest)) {
				t.Fatalf("Write: %d, %v", n, err)
			}
			rest = rest[n:]
			if p&0x10 != 0 {
				w.Beat()
			}
		}
		if len(rest) > 0 {
			w.Write(rest)
		}
		fail := len(plan) > 0 && plan[len(plan)-1]&0x40 != 0
		if fail {
			w.End(&streamguard.Error{Source: streamguard.SourceModel,
				Reason: streamguard.ReasonModelError, Message: "boom\r\n\ndata: injected"})
		}
		abort := w.Close()

		want, _ := parseSSE(stream)
		got, _ := parseSSE(rec.Body.Bytes())
		if fail && !abort {
			if len(got) == 0 || got[len(got)-1].typ != "error" || !json.Valid([]byte(got[len(got)-1].data)) {
				t.Fatalf("stream %q\nwritten %q: no failure frame at the end", stream, rec.Body.Bytes())
			}
			got = got[:len(got)-1]
		}
		if !equalEvents(got, want) {
			t.Fatalf("stream %q\nwritten %q\nparses as %q\nwant %q", stream, rec.Body.Bytes(), got, want)
		}
	})
}
