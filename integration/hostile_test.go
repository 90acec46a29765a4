package integration

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode"

	"github.com/streamguard/streamguard"
	"github.com/streamguard/streamguard/gatewaytest"
	"github.com/streamguard/streamguard/middleware"
	"github.com/streamguard/streamguard/retry"
	"github.com/streamguard/streamguard/sse"
	gosse "github.com/tmaxmax/go-sse"
)

// heapGrowth returns how many bytes the process allocated while f ran
// (runtime.MemStats.TotalAlloc): everything the client, the guard and the
// in-process server allocated, freed or not.
func heapGrowth(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// endless writes prefix and then the byte 'x' without a newline, in 32 KiB
// writes, until a write fails or limit bytes are written, and reports how
// many bytes it wrote on wrote.
func endless(prefix string, limit int64, wrote chan<- int64) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.WriteString(w, prefix)
		total := int64(n)
		buf := bytes.Repeat([]byte("x"), 32<<10)
		for total < limit {
			n, err := w.Write(buf)
			total += int64(n)
			if err != nil {
				break
			}
		}
		wrote <- total
	}
}

// TestHostileEndlessLine: a server that sends one line without end is cut
// off once the incomplete event passes MaxEventBytes (64 KiB here), with
// event_too_large, the whole events before it delivered and memory bounded
// by the cap, not by what the server sends (up to 256 MiB here).
func TestHostileEndlessLine(t *testing.T) {
	const maxEvent = 64 << 10
	const limit = 256 << 20
	good := "data: " + gatewaytest.ChatChunk(0) + "\n\n" + "data: " + gatewaytest.ChatChunk(1) + "\n\n"
	wrote := make(chan int64, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		endless(good+"data: ", limit, wrote)(w, r)
	}))
	defer srv.Close()
	client := middleware.NewClient(middleware.Config{Stream: sse.Config{MaxEventBytes: maxEvent}})

	var delivered []byte
	var err error
	grew := heapGrowth(func() {
		req, _ := http.NewRequestWithContext(testContext(t), http.MethodGet, srv.URL, nil)
		resp, derr := client.Do(req)
		if derr != nil {
			t.Fatal(derr)
		}
		delivered, err = io.ReadAll(resp.Body)
		resp.Body.Close()
	})
	se := asStreamError(t, err)
	wantVerdict(t, se, streamguard.SourceModel, streamguard.ReasonEventTooLarge)
	if string(delivered) != good || se.Events != 2 || !errors.Is(err, sse.ErrEventTooLarge) {
		t.Fatalf("delivered %d bytes (%q...), Events %d, cause %v", len(delivered), tail(delivered), se.Events, se.Err)
	}
	var sent int64
	select {
	case sent = <-wrote:
	case <-time.After(testTimeout):
		t.Fatal("the server never stopped writing: the connection was not closed")
	}
	if sent >= limit {
		t.Errorf("the server wrote all %d bytes: the client read on", sent)
	}
	// The guard holds at most MaxEventBytes+1; the rest is net/http's
	// buffers. 8 MiB leaves room for -race and GC timing, and is far below
	// what an unbounded buffer of the bytes sent would take.
	if grew > 8<<20 {
		t.Errorf("%d bytes allocated while reading", grew)
	}
	t.Logf("MaxEventBytes %d: the server wrote %d bytes before the client hung up; %d bytes allocated; %v", maxEvent, sent, grew, se)
}

// TestHostileHugeErrorBody: an error response whose body is 1 GiB
// (generated as it is sent, never stored) is read only to MaxErrorBody
// (64 KiB) per attempt, by the retry layer, the tracing layer and Check
// alike, and closing it stops the server.
func TestHostileHugeErrorBody(t *testing.T) {
	const size = 1 << 30
	cases := []struct {
		status   int
		attempts int
		source   streamguard.Source
		reason   streamguard.Reason
	}{
		{500, 1, streamguard.SourceModel, streamguard.ReasonModelError},     // not retried
		{502, 3, streamguard.SourcePlatform, streamguard.ReasonUnreachable}, // retried, each attempt's body read to 64 KiB + 1
	}
	for _, c := range cases {
		t.Run(strconv.Itoa(c.status), func(t *testing.T) {
			wrote := make(chan int64, c.attempts)
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/html")
				w.Header().Set("Content-Length", strconv.Itoa(size))
				w.WriteHeader(c.status)
				endless("<html><title>a very large error page</title>", size, wrote)(w, r)
			}))
			defer srv.Close()
			counted := &countingTransport{base: middleware.DefaultBase(testTimeout)}
			client := middleware.NewClient(middleware.Config{Base: counted,
				Retry: retry.Policy{MaxAttempts: c.attempts, Backoff: fastBackoff}})

			var se *streamguard.Error
			grew := heapGrowth(func() {
				req, _ := http.NewRequestWithContext(testContext(t), http.MethodGet, srv.URL, nil)
				resp, err := client.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				se = asStreamError(t, streamguard.Check(resp))
				resp.Body.Close()
			})
			wantVerdict(t, se, c.source, c.reason)
			if se.Attempts != c.attempts || se.Message != "a very large error page" {
				t.Errorf("Attempts %d, Message %q", se.Attempts, se.Message)
			}
			read := counted.read.Load()
			if read > int64(c.attempts)*(streamguard.MaxErrorBody+1) {
				t.Errorf("the stack read %d bytes of %d error bodies: more than %d each", read, c.attempts, streamguard.MaxErrorBody+1)
			}
			var sent int64
			for range c.attempts {
				select {
				case n := <-wrote:
					sent += n
				case <-time.After(testTimeout):
					t.Fatal("the server never stopped writing: the connection was not closed")
				}
			}
			if sent >= int64(c.attempts)*size {
				t.Errorf("the server sent every byte")
			}
			if grew > 16<<20 {
				t.Errorf("%d bytes allocated", grew)
			}
			t.Logf("%d: %d attempts, %d bytes read from the wire (cap %d per attempt), %d bytes written by the server before it was cut off, %d bytes allocated",
				c.status, c.attempts, read, streamguard.MaxErrorBody+1, sent, grew)
		})
	}
}

// undeadlined returns a context without a deadline (ctx.Deadline reports
// none, so the budget and the hint alone decide), canceled after
// testTimeout all the same.
func undeadlined(t *testing.T) context.Context {
	ctx, cancel := context.WithCancel(t.Context())
	stop := time.AfterFunc(testTimeout, cancel)
	t.Cleanup(func() { stop.Stop(); cancel() })
	return ctx
}

// retryAfterServer answers its first request 503 with the given headers and
// every later one with a short chat stream.
func retryAfterServer(t *testing.T, hint http.Header) (*httptest.Server, *atomic.Int64) {
	var n atomic.Int64
	stream := gatewaytest.ChatStream(2)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) == 1 {
			for k, v := range hint {
				w.Header()[k] = v
			}
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusServiceUnavailable)
			io.WriteString(w, `{"error":"Instance is draining: please retry on another instance"}`)
			return
		}
		stream.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

// TestHostileRetryAfter: a server's hint of 999999999 s (31.7 years), in any
// of its forms, never makes the client wait longer than MaxRetryAfter; a
// hint longer than the time left before the request's deadline ends the
// retries at once.
func TestHostileRetryAfter(t *testing.T) {
	// fits: the hint is shorter than longBudget, so that a request with
	// that budget and a context without a deadline retries, and the cap
	// decides the wait. The others outlast any budget a time.Duration holds.
	hints := []struct {
		name string
		hint http.Header
		fits bool
	}{
		{"Retry-After seconds", http.Header{"Retry-After": {"999999999"}}, true},
		{"retry-after-ms", http.Header{"Retry-After-Ms": {"999999999000"}}, true},
		{"Retry-After date", http.Header{"Retry-After": {"Fri, 31 Dec 9999 23:59:59 GMT"}}, false},
		{"Retry-After past int64", http.Header{"Retry-After": {"99999999999999999999999"}}, false},
	}
	const longBudget = 40 * 365 * 24 * time.Hour

	for _, h := range hints {
		hint := h.hint
		t.Run(h.name, func(t *testing.T) {
			if h.fits {
				t.Run("capped at MaxRetryAfter", func(t *testing.T) {
					srv, n := retryAfterServer(t, hint)
					var delays []time.Duration
					client := middleware.NewClient(middleware.Config{Budget: longBudget,
						Retry: retry.Policy{MaxRetryAfter: 20 * time.Millisecond, OnRetry: func(a retry.Attempt) { delays = append(delays, a.Delay) }}})
					defer client.CloseIdleConnections()
					req, _ := http.NewRequestWithContext(undeadlined(t), http.MethodGet, srv.URL, nil)
					resp, err := client.Do(req)
					if err != nil {
						t.Fatal(err)
					}
					defer resp.Body.Close()
					if _, err := io.ReadAll(resp.Body); err != nil || resp.StatusCode != 200 {
						t.Fatalf("status %d, %v", resp.StatusCode, err)
					}
					if len(delays) != 1 || delays[0] != 20*time.Millisecond || n.Load() != 2 {
						t.Fatalf("waits %v over %d attempts, want one of 20ms", delays, n.Load())
					}
				})

				t.Run("default cap of 30 s", func(t *testing.T) {
					srv, _ := retryAfterServer(t, hint)
					ctx, cancel := context.WithCancel(undeadlined(t))
					defer cancel()
					var delays []time.Duration
					client := middleware.NewClient(middleware.Config{Budget: longBudget,
						Retry: retry.Policy{OnRetry: func(a retry.Attempt) {
							delays = append(delays, a.Delay)
							cancel() // observed: no need to sit out the wait
						}}})
					defer client.CloseIdleConnections()
					req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL, nil)
					if resp, err := client.Do(req); err == nil {
						resp.Body.Close()
					}
					if len(delays) != 1 || delays[0] != retry.DefaultMaxRetryAfter {
						t.Fatalf("waits %v, want one of %v", delays, retry.DefaultMaxRetryAfter)
					}
				})
			}

			t.Run("past the deadline: no retry", func(t *testing.T) {
				srv, n := retryAfterServer(t, hint)
				var retries atomic.Int64
				client := middleware.NewClient(middleware.Config{ // the default 1200 s budget
					Retry: retry.Policy{OnRetry: func(retry.Attempt) { retries.Add(1) }}})
				defer client.CloseIdleConnections()
				req, _ := http.NewRequestWithContext(testContext(t), http.MethodGet, srv.URL, nil)
				resp, err := client.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				se := asStreamError(t, streamguard.Check(resp))
				wantVerdict(t, se, streamguard.SourcePlatform, streamguard.ReasonUnavailable)
				if retries.Load() != 0 || n.Load() != 1 || se.Attempts != 1 {
					t.Fatalf("%d retries, %d attempts (Attempts %d): want the 503 at once", retries.Load(), n.Load(), se.Attempts)
				}
			})
		})
	}
}

// TestHostileRedirect: a redirect to another host (127.0.0.1 to localhost)
// carries none of Authorization, Api-Key and X-Api-Key, on any later hop
// either; a redirect on the same host keeps them.
func TestHostileRedirect(t *testing.T) {
	var mu sync.Mutex
	seen := map[string]http.Header{} // by host and path
	record := func(r *http.Request) {
		mu.Lock()
		seen[r.Host+r.URL.Path] = r.Header.Clone()
		mu.Unlock()
	}
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		record(r)
		if r.URL.Path == "/hop" {
			http.Redirect(w, r, "/final", http.StatusTemporaryRedirect)
			return
		}
		io.WriteString(w, "ok")
	}))
	defer other.Close()
	_, port, _ := net.SplitHostPort(other.Listener.Addr().String())
	otherHost := "localhost:" + port // the same listener, by another name

	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		record(r)
		switch r.URL.Path {
		case "/away":
			http.Redirect(w, r, "http://"+otherHost+"/hop", http.StatusTemporaryRedirect)
		case "/same":
			http.Redirect(w, r, "/final", http.StatusFound)
		default:
			io.WriteString(w, "ok")
		}
	}))
	defer origin.Close()
	originHost := origin.Listener.Addr().String() // 127.0.0.1:port

	client := middleware.NewClient(middleware.Config{})
	defer client.CloseIdleConnections()
	secrets := map[string]string{"Authorization": "Bearer sk-secret-1", "Api-Key": "secret-2", "X-Api-Key": "secret-3"}
	get := func(path string) {
		req, _ := http.NewRequestWithContext(testContext(t), http.MethodGet, origin.URL+path, nil)
		for k, v := range secrets {
			req.Header.Set(k, v)
		}
		req.Header.Set("X-Trace", "kept")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("GET %s: %d", path, resp.StatusCode)
		}
	}

	get("/away")
	get("/same")
	mu.Lock()
	defer mu.Unlock()
	for _, hop := range []string{otherHost + "/hop", otherHost + "/final"} {
		h, ok := seen[hop]
		if !ok {
			t.Fatalf("no request reached %s: %v", hop, seen)
		}
		for k := range secrets {
			if v := h.Get(k); v != "" {
				t.Errorf("%s received %s: %q", hop, k, v)
			}
		}
		if h.Get("X-Trace") != "kept" {
			t.Errorf("%s lost the other headers: %v", hop, h)
		}
	}
	for k, v := range secrets {
		if got := seen[originHost+"/final"].Get(k); got != v {
			t.Errorf("same-host redirect: %s = %q, want it kept", k, got)
		}
	}
}

// frameOf checks that frame is exactly one SSE event with only a data field
// (first, as go-openai needs) and an event field, parses it with go-sse, and
// returns its data as JSON.
// With clean, no string in the data may hold a control character once
// decoded either.
func frameOf(t *testing.T, frame []byte, clean bool) map[string]any {
	t.Helper()
	if bytes.ContainsRune(frame, '\r') || !bytes.HasSuffix(frame, []byte("\n\n")) || bytes.Count(frame, []byte("\n")) != 3 {
		t.Fatalf("frame is not two lines and a blank one: %q", frame)
	}
	lines := strings.Split(strings.TrimSuffix(string(frame), "\n\n"), "\n")
	if !strings.HasPrefix(lines[0], `data: {"error":{`) || lines[1] != "event: error" {
		t.Fatalf("frame fields: %q", lines)
	}
	var evs []gosse.Event
	for ev, err := range gosse.Read(bytes.NewReader(frame), nil) {
		if err != nil {
			t.Fatal(err)
		}
		evs = append(evs, ev)
	}
	if len(evs) != 1 || evs[0].Type != "error" || evs[0].LastEventID != "" {
		t.Fatalf("go-sse parsed the frame as %+v", evs)
	}
	var data map[string]any
	if err := json.Unmarshal([]byte(evs[0].Data), &data); err != nil {
		t.Fatalf("frame data %q: %v", evs[0].Data, err)
	}
	inner, _ := data["error"].(map[string]any)
	for _, fields := range []map[string]any{data, inner} {
		for k, v := range fields {
			if s, ok := v.(string); ok && clean && strings.IndexFunc(s, func(r rune) bool {
				return unicode.IsControl(r) || r == '\u2028' || r == '\u2029'
			}) >= 0 {
				t.Errorf("frame field %s holds a control character: %q", k, s)
			}
		}
	}
	return data
}

// injection is text that would end an SSE line and start events of its own
// if it reached a frame raw.
const injection = "boom\n\nevent: injected\ndata: {}\n\nid: 666\r\nretry: 1\r\u2028\u0085data: x"

// TestHostileCRLFNeverReachesFailureFrame: text from upstream with CR, LF,
// NEL or U+2028 in it, whether in a header or in an error message, never
// reaches a failure frame raw: the guard's frame (client) and WriteError's
// (server) are each exactly one event with only event and data.
func TestHostileCRLFNeverReachesFailureFrame(t *testing.T) {
	t.Run("guard: in-band error and request ID", func(t *testing.T) {
		msg, _ := json.Marshal(injection)
		sent := "data: " + gatewaytest.ChatChunk(0) + "\n\n" +
			`data: {"error":{"message":` + string(msg) + `,"code":"bad\nid: 1"}}` + "\n\n" +
			"data: [DONE]\n\n"
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			// net/http turns CR and LF in header values into spaces; NEL,
			// U+2028 and other controls go out as they are.
			w.Header().Set("X-Request-Id", "req-1\u2028event: injected\u0085data: x")
			w.Header().Set("Content-Type", "text/event-stream")
			io.WriteString(w, sent)
		}))
		defer srv.Close()
		client := middleware.NewClient(middleware.Config{Stream: sse.Config{FailureEvent: true}})
		defer client.CloseIdleConnections()
		resp, err := client.Get(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		delivered, err := io.ReadAll(resp.Body)
		wantVerdict(t, asStreamError(t, err), streamguard.SourceModel, streamguard.ReasonModelError)
		if !bytes.HasPrefix(delivered, []byte(sent)) {
			t.Fatalf("the stream itself was altered: %q", delivered)
		}
		data := frameOf(t, delivered[len(sent):], true)
		if !strings.Contains(data["message"].(string), "event: injected") || !strings.HasPrefix(data["request_id"].(string), "req-1") {
			t.Errorf("frame data %v", data)
		}
	})

	t.Run("guard: raw CR and LF in a header", func(t *testing.T) {
		// net/http never hands the client such a header (the next subtest),
		// but a base RoundTripper of the caller's own may: the stub answers
		// with a request ID holding raw CR, LF or CRLF and SSE fields, and a
		// stream cut mid-event, through the whole client stack. The guard's
		// failure frame carries the ID, and neither its line ends nor its
		// fields.
		good := "data: " + gatewaytest.ChatChunk(0) + "\n\n"
		for _, id := range []string{
			"req-2\revent: injected",
			"req-2\nevent: injected",
			"req-2\r\nevent: injected\r\n\r\ndata: x\n\nid: 666",
		} {
			t.Run(strconv.Quote(id), func(t *testing.T) {
				base := roundTripFunc(func(req *http.Request) (*http.Response, error) {
					return &http.Response{
						Status: "200 OK", StatusCode: 200, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
						Header: http.Header{
							"Content-Type": {"text/event-stream"},
							"X-Request-Id": {id},
						},
						Body:          io.NopCloser(strings.NewReader(good + `data: {"id":`)), // cut mid-event
						ContentLength: -1,
						Request:       req,
					}, nil
				})
				client := middleware.NewClient(middleware.Config{Base: base, Stream: sse.Config{FailureEvent: true}, Retry: retry.Policy{MaxAttempts: 1}})
				resp, err := client.Get("http://model.invalid/v1/chat/completions")
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				delivered, err := io.ReadAll(resp.Body)
				se := asStreamError(t, err)
				wantVerdict(t, se, streamguard.SourcePlatform, streamguard.ReasonTruncated)
				if !bytes.HasPrefix(delivered, []byte(good)) {
					t.Fatalf("delivered %q", delivered)
				}
				frame := delivered[len(good):]
				if bytes.Contains(frame, []byte("\nevent: injected")) || bytes.Contains(frame, []byte("\revent: injected")) {
					t.Fatalf("the header's field reached the frame as a field: %q", frame)
				}
				data := frameOf(t, frame, true)
				rid, _ := data["request_id"].(string)
				if !strings.HasPrefix(rid, "req-2") {
					t.Fatalf("frame data %v: no request_id from the header", data)
				}
				if strings.ContainsAny(rid, "\r\n") || strings.ContainsAny(se.Error(), "\r\n") {
					t.Fatalf("request_id %q, error %q: a raw line end", rid, se.Error())
				}
			})
		}
	})

	t.Run("net/http refuses a raw CR in a header", func(t *testing.T) {
		// A hijacked connection writes what net/http would not: a bare CR
		// inside a header value, and a header line that is an SSE field.
		// The client refuses the response (go1.26: "malformed MIME header
		// line"), so no frame comes of it; the stack's error is one line.
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			conn, buf, err := http.NewResponseController(w).Hijack()
			if err != nil {
				t.Error(err)
				return
			}
			defer conn.Close()
			buf.WriteString("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n" +
				"X-Request-Id: req-2\revent: injected\r\n" +
				"\r\n" + "data: " + gatewaytest.ChatChunk(0) + "\n\ndata: {\"id\":") // cut mid-event
			buf.Flush()
		}))
		defer srv.Close()
		client := middleware.NewClient(middleware.Config{Stream: sse.Config{FailureEvent: true}, Retry: retry.Policy{MaxAttempts: 1}})
		defer client.CloseIdleConnections()
		resp, err := client.Get(srv.URL)
		if err == nil {
			resp.Body.Close()
			t.Fatalf("net/http accepted a raw CR in a header (X-Request-Id %q): the response reached the guard", resp.Header.Get("X-Request-Id"))
		}
		se := asStreamError(t, err)
		wantVerdict(t, se, streamguard.SourceNetwork, streamguard.ReasonConnection)
		if strings.ContainsAny(se.Error(), "\r\n") {
			t.Fatalf("error is not one line: %q", se.Error())
		}
	})

	t.Run("server: a relay's WriteError after the 200", func(t *testing.T) {
		// The model sends a chunk and an in-band error carrying the
		// injection, under a request ID with NEL and U+2028; a relay
		// behind middleware.NewHandler reads it through the client stack
		// and passes the guard's error to WriteError.
		msg, _ := json.Marshal(injection)
		upstreamSent := "data: " + gatewaytest.ChatChunk(0) + "\n\n" +
			`data: {"error":{"message":` + string(msg) + `,"code":"bad\r\nid: 1"}}` + "\n\n"
		model := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("X-Request-Id", "req-3\u2028event: injected\u0085data: x")
			w.Header().Set("Content-Type", "text/event-stream")
			io.WriteString(w, upstreamSent)
		}))
		defer model.Close()
		upstream := middleware.NewClient(middleware.Config{})
		defer upstream.CloseIdleConnections()
		relay := httptest.NewServer(middleware.NewHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			req, _ := http.NewRequestWithContext(r.Context(), http.MethodGet, model.URL, nil)
			resp, err := upstream.Do(req)
			if err != nil {
				middleware.WriteError(w, r, err)
				return
			}
			defer resp.Body.Close()
			w.Header().Set("Content-Type", "text/event-stream")
			if _, err := io.Copy(w, resp.Body); err != nil {
				middleware.WriteError(w, r, err)
			}
		}), middleware.ServerConfig{}))
		defer relay.Close()

		resp, err := relay.Client().Get(relay.URL) // a plain client: the raw bytes
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		delivered, err := io.ReadAll(resp.Body)
		if err != nil || !bytes.HasPrefix(delivered, []byte(upstreamSent)) {
			t.Fatalf("%v: %q", err, delivered)
		}
		data := frameOf(t, delivered[len(upstreamSent):], true)
		if data["reason"] != "model_error" || !strings.Contains(data["message"].(string), "event: injected") ||
			!strings.HasPrefix(data["request_id"].(string), "req-3") {
			t.Errorf("frame data %v", data)
		}
	})

	t.Run("server: WriteError of a hand-built error", func(t *testing.T) {
		// Code and RequestID set by the handler itself, not taken from a
		// response: the frame's structure holds whatever they contain.
		sent := "data: " + gatewaytest.ChatChunk(0) + "\n\n"
		srv := httptest.NewServer(middleware.NewHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/event-stream")
			io.WriteString(w, sent)
			http.NewResponseController(w).Flush()
			middleware.WriteError(w, r, &streamguard.Error{StatusCode: 502, Source: streamguard.SourcePlatform,
				Reason: streamguard.ReasonUnreachable, Message: injection, Code: "c\r\nid: 2",
				RequestID: "req-4\n\nevent: injected", Retryable: true})
		}), middleware.ServerConfig{}))
		defer srv.Close()
		resp, err := srv.Client().Get(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		delivered, err := io.ReadAll(resp.Body)
		if err != nil || !bytes.HasPrefix(delivered, []byte(sent)) {
			t.Fatalf("%v: %q", err, delivered)
		}
		data := frameOf(t, delivered[len(sent):], false)
		if data["reason"] != "unreachable" || strings.ContainsAny(data["message"].(string), "\r\n\u2028\u0085") {
			t.Errorf("frame data %v", data)
		}
	})
}

// trickleServer is a raw TCP server that reads a request's headers, and
// then writes out one byte of reply for each value on its ticks channel:
// a slow loris, paced by the test rather than by a clock.
type trickleServer struct {
	ln    net.Listener
	ticks chan struct{}
	quit  chan struct{}
	wg    sync.WaitGroup
}

func newTrickleServer(t *testing.T, reply string) *trickleServer {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &trickleServer{ln: ln, ticks: make(chan struct{}), quit: make(chan struct{})}
	s.wg.Go(func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			s.wg.Go(func() { s.serve(conn, reply) })
		}
	})
	t.Cleanup(func() {
		close(s.quit)
		ln.Close()
		s.wg.Wait()
	})
	return s
}

func (s *trickleServer) serve(conn net.Conn, reply string) {
	defer conn.Close()
	br := bufio.NewReader(conn)
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return
		}
		if line == "\r\n" {
			break
		}
	}
	for i := 0; i < len(reply); i++ {
		select {
		case <-s.ticks:
		case <-s.quit:
			return
		}
		if _, err := conn.Write([]byte{reply[i]}); err != nil {
			return
		}
	}
	<-s.quit
}

// tick sends n ticks; each is taken by the server just before it writes a
// byte.
func (s *trickleServer) tick(t *testing.T, n int) {
	for range n {
		select {
		case s.ticks <- struct{}{}:
		case <-time.After(testTimeout):
			t.Fatal("the server stopped taking ticks")
		}
	}
}

// TestHostileSlowLoris: an upstream that sends one byte at a time and then
// pauses is caught by the response-header timeout before its headers are
// complete, and by the stream's idle timeout after them; one that never
// pauses long enough for either is ended by the request budget.
func TestHostileSlowLoris(t *testing.T) {
	const head = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n"
	body := "data: " + gatewaytest.ChatChunk(0) + "\n\n"

	t.Run("header timeout", func(t *testing.T) {
		srv := newTrickleServer(t, head+body)
		client := middleware.NewClient(middleware.Config{Base: middleware.DefaultBase(150 * time.Millisecond),
			Retry: retry.Policy{MaxAttempts: 1}})
		defer client.CloseIdleConnections()
		errc := make(chan error, 1)
		go func() {
			resp, err := client.Get("http://" + srv.ln.Addr().String())
			if err == nil {
				resp.Body.Close()
			}
			errc <- err
		}()
		srv.tick(t, 5) // "HTTP/", then nothing
		err := <-errc
		se := asStreamError(t, err)
		var ne net.Error
		if !errors.As(se.Err, &ne) || !ne.Timeout() || !strings.Contains(err.Error(), "timeout awaiting response headers") {
			t.Fatalf("cause %v", se.Err)
		}
		t.Run("attribution", func(t *testing.T) {
			// No response: a connection failure, or the platform's
			// timeout when the header timeout is read as the budget's;
			// never the caller's own deadline, which was not set.
			if se.Reason != streamguard.ReasonConnection && se.Reason != streamguard.ReasonTimeout {
				t.Fatalf("got %s/%s: %v", se.Source, se.Reason, se)
			}
		})
	})

	t.Run("idle timeout", func(t *testing.T) {
		srv := newTrickleServer(t, head+body)
		client := middleware.NewClient(middleware.Config{Stream: sse.Config{IdleTimeout: 150 * time.Millisecond}})
		defer client.CloseIdleConnections()
		type result struct {
			delivered []byte
			err       error
		}
		done := make(chan result, 1)
		go func() {
			resp, err := client.Get("http://" + srv.ln.Addr().String())
			if err != nil {
				done <- result{err: err}
				return
			}
			defer resp.Body.Close()
			b, err := io.ReadAll(resp.Body)
			done <- result{b, err}
		}()
		srv.tick(t, len(head)+10) // the headers and "data: {\"id", then a pause
		r := <-done
		se := asStreamError(t, r.err)
		wantVerdict(t, se, streamguard.SourcePlatform, streamguard.ReasonStalled)
		if len(r.delivered) != 0 || !errors.Is(r.err, sse.ErrIdleTimeout) {
			t.Fatalf("delivered %q, cause %v", r.delivered, se.Err)
		}
	})

	t.Run("never idle: the budget ends it", func(t *testing.T) {
		srv := newTrickleServer(t, head+"data: "+strings.Repeat("x", 1<<20))
		client := middleware.NewClient(middleware.Config{Budget: 300 * time.Millisecond, Grace: -1,
			Stream: sse.Config{IdleTimeout: 5 * time.Second}})
		defer client.CloseIdleConnections()
		done := make(chan error, 1)
		go func() {
			resp, err := client.Get("http://" + srv.ln.Addr().String())
			if err != nil {
				done <- err
				return
			}
			defer resp.Body.Close()
			_, err = io.ReadAll(resp.Body)
			done <- err
		}()
		// A byte every millisecond, far inside the idle timeout, until
		// the client gives up.
		pace := time.NewTicker(time.Millisecond)
		defer pace.Stop()
		bound := time.After(testTimeout)
		for {
			select {
			case err := <-done:
				se := asStreamError(t, err)
				wantVerdict(t, se, streamguard.SourcePlatform, streamguard.ReasonTimeout)
				if !errors.Is(err, streamguard.ErrBudgetExceeded) {
					t.Fatalf("cause %v", se.Err)
				}
				return
			case <-pace.C:
				select {
				case srv.ticks <- struct{}{}:
				case err := <-done:
					done <- err
				}
			case <-bound:
				t.Fatal("the stream outlived its budget")
			}
		}
	})
}

// rawResponse answers every request on a hijacked connection with head and
// body exactly as given, and hangs up.
func rawResponse(t *testing.T, contentLength int, body string) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, buf, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		defer conn.Close()
		fmt.Fprintf(buf, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s", contentLength, body)
		buf.Flush()
	}))
	t.Cleanup(srv.Close)
	return srv
}

// TestHostileContentLength: a 200 whose Content-Length disagrees with what
// the server sends. net/http stops reading at the declared length, so a
// short one is a clean EOF: the guard catches it when it ends inside an
// event or a known dialect's stream without its terminal, and cannot when
// it ends at an event boundary of a stream of no known dialect (what is
// past it is silently dropped). A long one is io.ErrUnexpectedEOF: always
// caught.
func TestHostileContentLength(t *testing.T) {
	var chat, raw strings.Builder
	for i := range 6 {
		fmt.Fprintf(&chat, "data: %s\n\n", gatewaytest.ChatChunk(i))
		fmt.Fprintf(&raw, "data: line %d\n\n", i)
	}
	chat.WriteString("data: [DONE]\n\n")
	chatBody, rawBody := chat.String(), raw.String()
	boundary := func(s string, events int) int { // the offset just after event n
		off := 0
		for range events {
			off += strings.Index(s[off:], "\n\n") + 2
		}
		return off
	}

	cases := []struct {
		name   string
		body   string
		length int
		events int
		source streamguard.Source // "": success
		reason streamguard.Reason
		cause  error
	}{
		{"short, inside an event", chatBody, boundary(chatBody, 3) + 20, 3,
			streamguard.SourcePlatform, streamguard.ReasonTruncated, sse.ErrPartialEvent},
		{"short, at a boundary of an OpenAI stream", chatBody, boundary(chatBody, 3), 3,
			streamguard.SourcePlatform, streamguard.ReasonTruncated, sse.ErrNoTerminal},
		{"short, at a boundary of an unknown dialect (undetectable)", rawBody, boundary(rawBody, 3), 3, "", "", nil},
		{"long, unknown dialect", rawBody, len(rawBody) + 100, 6,
			streamguard.SourceNetwork, streamguard.ReasonTruncated, io.ErrUnexpectedEOF},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			srv := rawResponse(t, c.length, c.body)
			client := middleware.NewClient(middleware.Config{})
			defer client.CloseIdleConnections()
			resp, err := client.Get(srv.URL)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			delivered, err := io.ReadAll(resp.Body)
			if want := c.body[:boundary(c.body, c.events)]; string(delivered) != want {
				t.Errorf("delivered %q, want the %d whole events %q", delivered, c.events, want)
			}
			if c.source == "" {
				if err != nil {
					t.Fatalf("verdict %v, want success", err)
				}
				t.Logf("Content-Length %d of %d bytes sent, at an event boundary of a stream of no known dialect: a clean success with %d of 6 events",
					c.length, len(c.body), c.events)
				return
			}
			se := asStreamError(t, err)
			wantVerdict(t, se, c.source, c.reason)
			if !errors.Is(err, c.cause) || se.Events != int64(c.events) {
				t.Fatalf("cause %v, Events %d", se.Err, se.Events)
			}
		})
	}
}
