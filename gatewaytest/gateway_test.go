package gatewaytest_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/streamguard/streamguard"
	"github.com/streamguard/streamguard/gatewaytest"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func get(t *testing.T, srv *gatewaytest.Server, path string) *http.Response {
	t.Helper()
	resp, err := srv.Client().Get(srv.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func TestStatusFaults(t *testing.T) {
	cases := []struct {
		name      string
		fault     gatewaytest.Fault
		status    int
		message   string
		reason    streamguard.Reason
		source    streamguard.Source
		retryHint string
	}{
		{"unreachable", gatewaytest.Unreachable(), 502, "Error making prediction", "unreachable", "platform", ""},
		{"client closed", gatewaytest.ClientClosed(), 502, "client closed connection", "canceled", "client", ""},
		{"draining", gatewaytest.Draining(1500 * time.Millisecond), 503, gatewaytest.MessageDraining, "unavailable", "platform", "2"},
		{"rate limited", gatewaytest.RateLimited(3 * time.Second), 429, gatewaytest.MessageRateLimited, "rate_limited", "platform", "3"},
		{"gateway timeout", gatewaytest.GatewayTimeout(time.Millisecond), 504, gatewaytest.MessageTimeout, "timeout", "platform", ""},
		{"payload too large", gatewaytest.PayloadTooLarge(), 413, "payload size of 0 bytes exceeds maximum size of 104857600 bytes", "payload_too_large", "request", ""},
		{"proxy html", gatewaytest.Status(502, "<html><title>502 Bad Gateway</title></html>"), 502, "502 Bad Gateway", "unreachable", "platform", ""},
		{"model 500", gatewaytest.Status(500, `{"error":"boom"}`), 500, "boom", "model_error", "model", ""},
	}
	model := gatewaytest.JSON(200, `{"ok":true}`)
	srv := gatewaytest.NewServer(model)
	defer srv.Close()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			srv.Script(c.fault)
			resp := get(t, srv, "/predict")
			if resp.StatusCode != c.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, c.status)
			}
			if got := resp.Header.Get("Retry-After"); got != c.retryHint {
				t.Errorf("Retry-After = %q, want %q", got, c.retryHint)
			}
			var se *streamguard.Error
			if !errors.As(streamguard.Check(resp), &se) {
				t.Fatal("not classified")
			}
			if se.Message != c.message || se.Reason != c.reason || se.Source != c.source {
				t.Errorf("got %s %s %q, want %s %s %q", se.Source, se.Reason, se.Message, c.source, c.reason, c.message)
			}
			if !strings.HasPrefix(se.RequestID, "gw-") {
				t.Errorf("RequestID = %q", se.RequestID)
			}
		})
	}
	// Past the script, requests pass through to the model.
	resp := get(t, srv, "/predict")
	if b, _ := io.ReadAll(resp.Body); resp.StatusCode != 200 || string(b) != `{"ok":true}` {
		t.Fatalf("pass: %d %s", resp.StatusCode, b)
	}
}

func TestScriptOrderAndRecords(t *testing.T) {
	srv := gatewaytest.NewServer(gatewaytest.Echo())
	defer srv.Close()
	srv.Script(gatewaytest.Draining(0), gatewaytest.Draining(0), gatewaytest.Pass())
	var got []int
	for i := range 4 {
		resp, err := srv.Client().Post(srv.URL+"/predict", "application/json", strings.NewReader(fmt.Sprintf(`{"n":%d}`, i)))
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		got = append(got, resp.StatusCode)
	}
	if fmt.Sprint(got) != "[503 503 200 200]" {
		t.Fatalf("statuses %v", got)
	}
	recs := srv.Records()
	if len(recs) != 4 || srv.Requests() != 4 {
		t.Fatalf("%d records, %d requests", len(recs), srv.Requests())
	}
	for i, r := range recs {
		if want := fmt.Sprintf(`{"n":%d}`, i); string(r.Body) != want || r.Method != "POST" || r.Path != "/predict" || r.N != int64(i+1) {
			t.Errorf("record %d = %+v", i, r)
		}
	}
	if recs[0].Fault.Kind() != gatewaytest.KindDraining || recs[2].Fault.Kind() != gatewaytest.KindPass {
		t.Errorf("faults recorded: %v %v", recs[0].Fault, recs[2].Fault)
	}
	if srv.BodyBytes() != 4*int64(len(`{"n":0}`)) {
		t.Errorf("BodyBytes = %d", srv.BodyBytes())
	}
}

func TestBodyLimits(t *testing.T) {
	srv := gatewaytest.NewServer(gatewaytest.Echo())
	defer srv.Close()

	post := func(path string, size int, chunked bool) *http.Response {
		var body io.Reader = strings.NewReader(strings.Repeat("x", size))
		if chunked {
			body = io.MultiReader(body) // unknown length: sent chunked
		}
		resp, err := srv.Client().Post(srv.URL+path, "application/json", body)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		return resp
	}
	// The async route's default cap, by Content-Length and by counting.
	for _, chunked := range []bool{false, true} {
		resp := post("/model/async_predict", streamguard.AsyncMaxBody+1, chunked)
		var se *streamguard.Error
		if !errors.As(streamguard.Check(resp), &se) || resp.StatusCode != 413 ||
			se.Message != "payload size of 262145 bytes exceeds maximum size of 262144 bytes" {
			t.Fatalf("chunked=%v: %d %v", chunked, resp.StatusCode, se)
		}
	}
	if resp := post("/model/async_predict", streamguard.AsyncMaxBody, false); resp.StatusCode != 200 {
		t.Fatalf("at the limit: %d", resp.StatusCode)
	}
	// Sync routes take the same body.
	if resp := post("/predict", streamguard.AsyncMaxBody+1, false); resp.StatusCode != 200 {
		t.Fatalf("sync: %d", resp.StatusCode)
	}
	srv.MaxBody = 10
	if resp := post("/predict", 11, true); resp.StatusCode != 413 {
		t.Fatalf("MaxBody: %d", resp.StatusCode)
	}
}

// readEvents reads n complete events (blank-line terminated) and returns them.
func readEvents(t *testing.T, r *bufio.Reader, n int) []string {
	t.Helper()
	var events []string
	var cur strings.Builder
	for len(events) < n {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("after %d events: %v", len(events), err)
		}
		if line == "\n" {
			events = append(events, cur.String())
			cur.Reset()
			continue
		}
		cur.WriteString(line)
	}
	return events
}

func TestStreamFaults(t *testing.T) {
	for _, h2 := range []bool{false, true} {
		proto := "HTTP/1.1"
		start := gatewaytest.NewServer
		if h2 {
			proto, start = "HTTP/2.0", gatewaytest.NewTLSServer
		}
		t.Run(proto, func(t *testing.T) {
			srv := start(gatewaytest.ChatStream(10))
			defer srv.Close()

			t.Run("pass", func(t *testing.T) {
				resp := get(t, srv, "/v1/chat/completions")
				if resp.Proto != proto {
					t.Fatalf("proto %s", resp.Proto)
				}
				b, err := io.ReadAll(resp.Body)
				if err != nil || !strings.HasSuffix(string(b), "data: [DONE]\n\n") || strings.Count(string(b), "\n\n") != 11 {
					t.Fatalf("%v: %q", err, b)
				}
			})
			t.Run("cut", func(t *testing.T) {
				srv.Script(gatewaytest.Cut(3))
				resp := get(t, srv, "/v1/chat/completions")
				b, err := io.ReadAll(resp.Body)
				if err == nil {
					t.Fatal("a cut stream read to a clean EOF")
				}
				if !h2 && !errors.Is(err, io.ErrUnexpectedEOF) {
					t.Errorf("HTTP/1.1 cut: %v, want io.ErrUnexpectedEOF", err)
				}
				whole := strings.Count(string(b), "\n\n")
				rest := string(b)[strings.LastIndex(string(b), "\n\n")+2:]
				if whole != 3 || rest == "" || !strings.HasPrefix("data: "+gatewaytest.ChatChunk(3), rest) {
					t.Errorf("got %d whole events and a partial %q", whole, rest)
				}
			})
			t.Run("end early", func(t *testing.T) {
				srv.Script(gatewaytest.EndEarly(4))
				resp := get(t, srv, "/v1/chat/completions")
				b, err := io.ReadAll(resp.Body)
				if err != nil || strings.Count(string(b), "\n\n") != 4 || strings.Contains(string(b), "[DONE]") {
					t.Errorf("%v: %q", err, b)
				}
			})
			t.Run("reset", func(t *testing.T) {
				srv.Script(gatewaytest.Reset(2))
				resp := get(t, srv, "/v1/chat/completions")
				b, err := io.ReadAll(resp.Body)
				if err == nil || strings.Count(string(b), "\n\n") != 2 {
					t.Fatalf("%v: %q", err, b)
				}
				if h2 && !strings.Contains(err.Error(), "INTERNAL_ERROR") {
					t.Errorf("HTTP/2 reset: %v, want RST_STREAM INTERNAL_ERROR", err)
				}
			})
			t.Run("stall until the gateway closes", func(t *testing.T) {
				// A gateway of its own, since Close ends its stalls for good.
				own := start(gatewaytest.ChatStream(10))
				defer own.Close()
				own.Script(gatewaytest.Stall(5))
				resp := get(t, own, "/v1/chat/completions")
				br := bufio.NewReader(resp.Body)
				readEvents(t, br, 5)
				type result struct {
					rest []byte
					err  error
				}
				got := make(chan result, 1)
				go func() {
					rest, err := io.ReadAll(br)
					got <- result{rest, err}
				}()
				select {
				case r := <-got: // a stall that is not one
					t.Fatalf("the stream went on before the gateway closed: %q, %v", r.rest, r.err)
				case <-time.After(200 * time.Millisecond):
				}
				own.Gateway.Close()
				if r := <-got; r.err == nil || len(r.rest) != 0 {
					t.Errorf("after the stall: %q, %v; want nothing and an error", r.rest, r.err)
				}
			})
			t.Run("stall until the client leaves", func(t *testing.T) {
				srv.Script(gatewaytest.Stall(1))
				ctx, cancel := context.WithCancel(context.Background())
				req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/v1/chat/completions", nil)
				resp, err := srv.Client().Do(req)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				readEvents(t, bufio.NewReader(resp.Body), 1)
				cancel()
				if _, err := io.ReadAll(resp.Body); !errors.Is(err, context.Canceled) {
					t.Errorf("read after cancel: %v", err)
				}
			})
		})
	}
}

func TestCutBeforeFirstEvent(t *testing.T) {
	srv := gatewaytest.NewServer(gatewaytest.AnthropicStream(3))
	defer srv.Close()
	srv.Script(gatewaytest.Cut(0))
	resp := get(t, srv, "/v1/messages")
	b, err := io.ReadAll(resp.Body)
	if !errors.Is(err, io.ErrUnexpectedEOF) || strings.Contains(string(b), "\n\n") || len(b) == 0 {
		t.Fatalf("%v: %q", err, b)
	}
}

func TestModelStreams(t *testing.T) {
	cases := []struct {
		name     string
		h        http.Handler
		events   int
		terminal string
	}{
		{"chat", gatewaytest.ChatStream(3), 4, "data: [DONE]\n\n"},
		{"anthropic", gatewaytest.AnthropicStream(3), 9, "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"},
		{"responses", gatewaytest.ResponsesStream(3), 5, "\"status\":\"completed\"}}\n\n"},
		{"error", gatewaytest.ErrorStream(2, "CUDA out of memory"), 4, "data: [DONE]\n\n"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			srv := gatewaytest.NewServer(c.h)
			defer srv.Close()
			resp := get(t, srv, "/")
			b, err := io.ReadAll(resp.Body)
			if err != nil || strings.Count(string(b), "\n\n") != c.events || !strings.HasSuffix(string(b), c.terminal) {
				t.Fatalf("%v: %q", err, b)
			}
			if resp.Header.Get("Content-Type") != "text/event-stream" {
				t.Errorf("Content-Type %q", resp.Header.Get("Content-Type"))
			}
		})
	}
}

func TestConcurrentChooseAndOpenConns(t *testing.T) {
	srv := gatewaytest.NewServer(gatewaytest.ChatStream(5))
	srv.Choose = func(n int64, r *http.Request) gatewaytest.Fault {
		if n%2 == 0 {
			return gatewaytest.Draining(0)
		}
		return gatewaytest.Pass()
	}
	client := srv.Client()
	var wg sync.WaitGroup
	var mu sync.Mutex
	statuses := map[int]int{}
	for range 20 {
		wg.Go(func() {
			resp, err := client.Get(srv.URL + "/")
			if err != nil {
				t.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			mu.Lock()
			statuses[resp.StatusCode]++
			mu.Unlock()
		})
	}
	wg.Wait()
	if statuses[200] != 10 || statuses[503] != 10 || srv.Requests() != 20 {
		t.Fatalf("statuses %v, requests %d", statuses, srv.Requests())
	}
	if srv.OpenConns() == 0 {
		t.Fatal("no idle connection tracked")
	}
	client.CloseIdleConnections()
	// Wall clock: real loopback sockets (no synctest), and 5 s is only reached when a connection leaks.
	deadline := time.Now().Add(5 * time.Second)
	for srv.OpenConns() != 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond) // the server sees the close asynchronously
	}
	if n := srv.OpenConns(); n != 0 {
		t.Fatalf("%d connections still open", n)
	}
	srv.Close()
}
