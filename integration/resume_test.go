package integration

import (
	"bufio"
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/responses"
	"github.com/streamguard/streamguard/gatewaytest"
	"github.com/streamguard/streamguard/middleware"
	"github.com/streamguard/streamguard/retry"
	"github.com/streamguard/streamguard/sse"
	gosse "github.com/tmaxmax/go-sse"
)

// resumeChunks is how many chunks the resumable models stream here.
const resumeChunks = 40

// protos runs f over an HTTP/1.1 and an HTTP/2 (TLS) gateway in front of
// model.
func protos(t *testing.T, model func() http.Handler, f func(t *testing.T, srv *gatewaytest.Server)) {
	for _, h2 := range []bool{false, true} {
		name, start := "HTTP/1.1", gatewaytest.NewServer
		if h2 {
			name, start = "HTTP/2", gatewaytest.NewTLSServer
		}
		t.Run(name, func(t *testing.T) {
			srv := start(model())
			defer srv.Close()
			f(t, srv)
		})
	}
}

// resumeStack is the default client stack over srv's transport, with
// resumes 1 ms apart.
func resumeStack(t *testing.T, srv *gatewaytest.Server, maxResumes int) *http.Client {
	t.Helper()
	hc := middleware.NewClient(middleware.Config{
		Base:   srv.Client().Transport,
		Retry:  retry.Policy{Backoff: fastBackoff},
		Stream: sse.Config{IdleTimeout: 2 * time.Second, Resume: sse.ResumeConfig{Backoff: fastBackoff, MaxResumes: maxResumes}},
	})
	t.Cleanup(hc.CloseIdleConnections)
	return hc
}

// cuts scripts the next requests: the stream is cut, reset and ended early
// at event counts picked from the test's name, so that each run cuts at
// other points; then the rest passes.
func cuts(srv *gatewaytest.Server, seed int) {
	a, b, c := 1+seed%7, 2+seed%5, 1+seed%3
	srv.Script(gatewaytest.Cut(a), gatewaytest.Reset(b), gatewaytest.EndEarly(c), gatewaytest.Pass())
}

// resumeRequests returns the Last-Event-ID of each request the gateway saw.
func resumeRequests(srv *gatewaytest.Server) []string {
	var ids []string
	for _, r := range srv.Gateway.Records() {
		ids = append(ids, r.Header.Get("Last-Event-ID"))
	}
	return ids
}

// TestResumeOpenAIChat streams a chat completion with openai-go v3 from a
// server with resumable streams that cuts it three times: openai-go sees one
// stream, every chunk once, in order, and no error.
func TestResumeOpenAIChat(t *testing.T) {
	protos(t, func() http.Handler { return gatewaytest.ResumableStream(resumeChunks) }, func(t *testing.T, srv *gatewaytest.Server) {
		client := openai.NewClient(option.WithBaseURL(srv.URL+"/v1/"), option.WithHTTPClient(resumeStack(t, srv, 0)),
			option.WithAPIKey("sk-test-key"), option.WithMaxRetries(0))
		cuts(srv, len(t.Name()))
		got, err := streamChat(t, client)
		if err != nil {
			t.Fatalf("stream error %v after %d chunks", err, len(got))
		}
		wantTokens(t, got, resumeChunks)
		if n := srv.Gateway.Requests(); n != 4 {
			t.Fatalf("%d requests, want 1 and 3 resumes: %q", n, resumeRequests(srv))
		}
	})
}

// TestResumeOpenAIResponses streams a background response with openai-go
// v3's Responses API; the guard continues it with starting_after after each
// cut.
func TestResumeOpenAIResponses(t *testing.T) {
	protos(t, func() http.Handler { return gatewaytest.BackgroundResponses(resumeChunks) }, func(t *testing.T, srv *gatewaytest.Server) {
		client := openai.NewClient(option.WithBaseURL(srv.URL+"/v1/"), option.WithHTTPClient(resumeStack(t, srv, 0)),
			option.WithAPIKey("sk-test-key"), option.WithMaxRetries(0))
		cuts(srv, len(t.Name()))
		stream := client.Responses.NewStreaming(testContext(t), responses.ResponseNewParams{
			Model:      "m",
			Input:      responses.ResponseNewParamsInputUnion{OfString: openai.String("hi")},
			Background: openai.Bool(true),
		})
		defer stream.Close()
		var deltas []string
		var seqs []int64
		completed := false
		for stream.Next() {
			ev := stream.Current()
			seqs = append(seqs, ev.SequenceNumber)
			switch ev.Type {
			case "response.output_text.delta":
				deltas = append(deltas, ev.Delta)
			case "response.completed":
				completed = true
			}
		}
		if err := stream.Err(); err != nil || !completed {
			t.Fatalf("stream error %v, completed %v, after %d events", err, completed, len(seqs))
		}
		wantTokens(t, deltas, resumeChunks)
		for i, s := range seqs {
			if s != int64(i) {
				t.Fatalf("event %d has sequence_number %d: %v", i, s, seqs)
			}
		}
		recs := srv.Gateway.Records()
		if len(recs) != 4 || recs[1].Method != http.MethodGet || recs[1].Header.Get("Authorization") != "Bearer sk-test-key" {
			t.Fatalf("%d requests; the first resume: %+v", len(recs), recs[min(1, len(recs)-1)])
		}
	})
}

// idEvents returns the ids of the events a go-sse reader delivers.
func checkIDs(t *testing.T, ids []string, n int) {
	t.Helper()
	if len(ids) != n+1 {
		t.Fatalf("%d events, want %d: %q", len(ids), n+1, ids)
	}
	for i, id := range ids {
		if id != strconv.Itoa(i+1) {
			t.Fatalf("event %d has id %q: %q", i, id, ids)
		}
	}
}

// TestResumeGoSSERead reads an SSE stream with ids through go-sse's Read,
// over the client stack: the cuts are repaired inside the body.
func TestResumeGoSSERead(t *testing.T) {
	protos(t, func() http.Handler { return gatewaytest.IDStream(resumeChunks) }, func(t *testing.T, srv *gatewaytest.Server) {
		hc := resumeStack(t, srv, 0)
		cuts(srv, len(t.Name()))
		req, _ := http.NewRequestWithContext(testContext(t), http.MethodGet, srv.URL+"/v1/events", nil)
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var ids []string
		for ev, err := range gosse.Read(resp.Body, nil) {
			if err != nil {
				t.Fatalf("go-sse Read: %v after %d events", err, len(ids))
			}
			ids = append(ids, ev.LastEventID)
		}
		checkIDs(t, ids, resumeChunks)
		if got := resumeRequests(srv); strings.Join(got, ",") == "" || len(got) != 4 {
			t.Fatalf("Last-Event-IDs sent: %q", got)
		}
	})
}

// TestResumeGoSSEClient reads through go-sse's Client, which reconnects on
// its own with Last-Event-ID whenever its connection ends. The guard may
// resume each cut only once here, so the second cut of a connection reaches
// go-sse, which reconnects: the two never resume the same cut, and the
// events arrive once each, in order.
func TestResumeGoSSEClient(t *testing.T) {
	protos(t, func() http.Handler { return gatewaytest.IDStream(resumeChunks) }, func(t *testing.T, srv *gatewaytest.Server) {
		hc := resumeStack(t, srv, 1)
		// Connection 1: cut at 3, resumed by the guard, cut again 2
		// later: the guard has no resume left, go-sse reconnects.
		// Connection 2 (go-sse's, from id 5): reset after 4, resumed by
		// the guard, then complete.
		srv.Script(gatewaytest.Cut(3), gatewaytest.Cut(2), gatewaytest.Reset(4), gatewaytest.Pass())
		ctx, cancel := context.WithCancel(testContext(t))
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/v1/events", nil)
		client := &gosse.Client{HTTPClient: hc, Backoff: gosse.Backoff{InitialInterval: time.Millisecond, MaxRetries: 3}}
		conn := client.NewConnection(req)
		var mu sync.Mutex
		var ids []string
		conn.SubscribeToAll(func(ev gosse.Event) {
			mu.Lock()
			defer mu.Unlock()
			ids = append(ids, ev.LastEventID)
			if ev.Data == "[DONE]" {
				cancel()
			}
		})
		if err := conn.Connect(); !errors.Is(err, context.Canceled) {
			t.Fatalf("Connect: %v", err)
		}
		mu.Lock()
		defer mu.Unlock()
		checkIDs(t, ids, resumeChunks)
		if got, want := resumeRequests(srv), []string{"", "3", "5", "9"}; strings.Join(got, ",") != strings.Join(want, ",") {
			t.Fatalf("Last-Event-IDs sent %q, want %q (guard, go-sse, guard)", got, want)
		}
	})
}

// TestResumeBufio reads the stream line by line with a raw bufio.Scanner.
func TestResumeBufio(t *testing.T) {
	protos(t, func() http.Handler { return gatewaytest.IDStream(resumeChunks) }, func(t *testing.T, srv *gatewaytest.Server) {
		hc := resumeStack(t, srv, 0)
		cuts(srv, len(t.Name()))
		req, _ := http.NewRequestWithContext(testContext(t), http.MethodGet, srv.URL+"/v1/events", nil)
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b strings.Builder
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			b.WriteString(sc.Text() + "\n")
		}
		if err := sc.Err(); err != nil {
			t.Fatal(err)
		}
		if b.String() != idStreamBody(resumeChunks) {
			t.Fatalf("lines differ from the uncut stream:\n%s", b.String())
		}
	})
}

// idStreamBody is the whole of gatewaytest.IDStream(n), uncut.
func idStreamBody(n int) string {
	var b strings.Builder
	for i := 1; i <= n+1; i++ {
		b.WriteString(gatewaytest.IDStreamEvent(i, n))
	}
	return b.String()
}
