package integration

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/streamguard/streamguard"
	"github.com/streamguard/streamguard/gatewaytest"
	"github.com/streamguard/streamguard/middleware"
	"github.com/streamguard/streamguard/retry"
	"github.com/streamguard/streamguard/sse"
	gosse "github.com/tmaxmax/go-sse"
)

// openaiChunks is how many chunks the model streams to the real clients.
const openaiChunks = 12

// newOpenAI returns an openai-go client whose HTTP client is the stack,
// pointed at srv. openai-go's own retries are off, so that every retry seen
// is the stack's.
func newOpenAI(t *testing.T, srv *gatewaytest.Server, retries *atomic.Int64) openai.Client {
	t.Helper()
	hc := middleware.NewClient(middleware.Config{
		Retry: retry.Policy{Backoff: fastBackoff, OnRetry: func(retry.Attempt) { retries.Add(1) }},
	})
	t.Cleanup(hc.CloseIdleConnections)
	return openai.NewClient(
		option.WithBaseURL(srv.URL+"/v1/"),
		option.WithHTTPClient(hc),
		option.WithAPIKey("sk-test-key"),
		option.WithMaxRetries(0),
	)
}

// streamChat runs one streaming chat completion and returns the content of
// its chunks and the stream's error.
func streamChat(t *testing.T, client openai.Client) ([]string, error) {
	t.Helper()
	stream := client.Chat.Completions.NewStreaming(testContext(t), openai.ChatCompletionNewParams{
		Model:    "m",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")},
	})
	defer stream.Close()
	var got []string
	for stream.Next() {
		for _, c := range stream.Current().Choices {
			got = append(got, c.Delta.Content)
		}
	}
	return got, stream.Err()
}

func wantTokens(t *testing.T, got []string, n int) {
	t.Helper()
	if len(got) != n {
		t.Fatalf("%d chunks, want %d: %q", len(got), n, got)
	}
	for i, s := range got {
		if s != fmt.Sprintf("tok%d ", i) {
			t.Fatalf("chunk %d = %q", i, s)
		}
	}
}

// TestOpenAIStreaming drives openai-go v3's chat streaming
// (Chat.Completions.NewStreaming) through middleware.NewClient.
func TestOpenAIStreaming(t *testing.T) {
	t.Run("complete", func(t *testing.T) {
		srv := gatewaytest.NewServer(gatewaytest.ChatStream(openaiChunks))
		defer srv.Close()
		var retries atomic.Int64
		got, err := streamChat(t, newOpenAI(t, srv, &retries))
		if err != nil {
			t.Fatalf("stream.Err() = %v", err)
		}
		wantTokens(t, got, openaiChunks)
		recs := srv.Records()
		if len(recs) != 1 || recs[0].Path != "/v1/chat/completions" || recs[0].Header.Get("Authorization") != "Bearer sk-test-key" {
			t.Fatalf("the gateway saw %+v", recs)
		}
	})

	t.Run("cut", func(t *testing.T) {
		srv := gatewaytest.NewServer(gatewaytest.ChatStream(openaiChunks))
		defer srv.Close()
		srv.Script(gatewaytest.Cut(5))
		var retries atomic.Int64
		got, err := streamChat(t, newOpenAI(t, srv, &retries))
		wantTokens(t, got, 5)
		se := asStreamError(t, err) // openai-go returned a clean end before the guard
		wantVerdict(t, se, streamguard.SourceNetwork, streamguard.ReasonTruncated)
		if se.Events != 5 || !errors.Is(err, io.ErrUnexpectedEOF) || retries.Load() != 0 {
			t.Fatalf("Events %d, cause %v, retries %d", se.Events, se.Err, retries.Load())
		}
		t.Logf("stream.Err(): %v", err)
	})

	t.Run("end early", func(t *testing.T) {
		// A clean end without [DONE]: openai-go alone reports success.
		srv := gatewaytest.NewServer(gatewaytest.ChatStream(openaiChunks))
		defer srv.Close()
		srv.Script(gatewaytest.EndEarly(4))
		var retries atomic.Int64
		got, err := streamChat(t, newOpenAI(t, srv, &retries))
		wantTokens(t, got, 4)
		wantVerdict(t, asStreamError(t, err), streamguard.SourcePlatform, streamguard.ReasonTruncated)
	})

	t.Run("503 then success", func(t *testing.T) {
		srv := gatewaytest.NewServer(gatewaytest.ChatStream(openaiChunks))
		defer srv.Close()
		srv.Script(gatewaytest.Draining(0))
		var retries atomic.Int64
		got, err := streamChat(t, newOpenAI(t, srv, &retries))
		if err != nil {
			t.Fatalf("stream.Err() = %v", err)
		}
		wantTokens(t, got, openaiChunks)
		if srv.Requests() != 2 || retries.Load() != 1 {
			t.Fatalf("%d requests, %d retries; want 2 and 1 (the stack's retry)", srv.Requests(), retries.Load())
		}
		// The retry replayed the request body that openai-go sent once.
		recs := srv.Records()
		if string(recs[0].Body) != string(recs[1].Body) || !strings.Contains(string(recs[1].Body), `"stream":true`) {
			t.Fatalf("bodies %q and %q", recs[0].Body, recs[1].Body)
		}
	})
}

// TestGoSSE drives tmaxmax/go-sse, both its Client/Connection and its Read
// iterator, over guarded bodies.
func TestGoSSE(t *testing.T) {
	const chunks = 8
	connect := func(t *testing.T, srv *gatewaytest.Server, cfg sse.Config) (int, error) {
		t.Helper()
		hc := middleware.NewClient(middleware.Config{Stream: cfg})
		defer hc.CloseIdleConnections()
		client := &gosse.Client{HTTPClient: hc, Backoff: gosse.Backoff{MaxRetries: -1}}
		req, _ := http.NewRequestWithContext(testContext(t), http.MethodGet, srv.URL+"/v1/chat/completions", nil)
		conn := client.NewConnection(req)
		events := 0
		conn.SubscribeMessages(func(ev gosse.Event) {
			if chunkIndex(ev.Data) == events {
				events++
			}
		})
		return events, conn.Connect()
	}

	t.Run("Connection complete", func(t *testing.T) {
		srv := gatewaytest.NewServer(gatewaytest.ChatStream(chunks))
		defer srv.Close()
		n, err := connect(t, srv, sse.Config{})
		// go-sse reports every end of a connection, a clean one included,
		// as "connection to server lost"; a complete stream's cause is the
		// guard's io.EOF, not a *streamguard.Error.
		var ce *gosse.ConnectionError
		var se *streamguard.Error
		if n != chunks || !errors.As(err, &ce) || ce.Err != io.EOF || errors.As(err, &se) {
			t.Fatalf("%d events, Connect() = %v", n, err)
		}
	})

	t.Run("Connection cut", func(t *testing.T) {
		srv := gatewaytest.NewServer(gatewaytest.ChatStream(chunks))
		defer srv.Close()
		srv.Script(gatewaytest.Cut(3))
		n, err := connect(t, srv, sse.Config{})
		se := asStreamError(t, err)
		wantVerdict(t, se, streamguard.SourceNetwork, streamguard.ReasonTruncated)
		if n != 3 || se.Events != 3 {
			t.Fatalf("%d events, Events %d", n, se.Events)
		}
	})

	read := func(t *testing.T, srv *gatewaytest.Server, cfg sse.Config) ([]gosse.Event, error) {
		t.Helper()
		hc := middleware.NewClient(middleware.Config{Stream: cfg})
		defer hc.CloseIdleConnections()
		req, _ := http.NewRequestWithContext(testContext(t), http.MethodGet, srv.URL+"/v1/chat/completions", nil)
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var evs []gosse.Event
		for ev, err := range gosse.Read(resp.Body, nil) {
			if err != nil {
				return evs, err
			}
			evs = append(evs, ev)
		}
		return evs, nil
	}

	t.Run("Read complete", func(t *testing.T) {
		srv := gatewaytest.NewServer(gatewaytest.ChatStream(chunks))
		defer srv.Close()
		evs, err := read(t, srv, sse.Config{})
		if err != nil || len(evs) != chunks+1 || evs[chunks].Data != "[DONE]" {
			t.Fatalf("%d events, %v", len(evs), err)
		}
	})

	t.Run("Read end early", func(t *testing.T) {
		// go-sse alone returns nil here: the stream just stops.
		srv := gatewaytest.NewServer(gatewaytest.ChatStream(chunks))
		defer srv.Close()
		srv.Script(gatewaytest.EndEarly(2))
		evs, err := read(t, srv, sse.Config{})
		se := asStreamError(t, err)
		wantVerdict(t, se, streamguard.SourcePlatform, streamguard.ReasonTruncated)
		if len(evs) != 2 {
			t.Fatalf("%d events", len(evs))
		}
	})

	t.Run("Read cut with failure event", func(t *testing.T) {
		srv := gatewaytest.NewServer(gatewaytest.ChatStream(chunks))
		defer srv.Close()
		srv.Script(gatewaytest.Cut(4))
		evs, err := read(t, srv, sse.Config{FailureEvent: true})
		se := asStreamError(t, err)
		wantVerdict(t, se, streamguard.SourceNetwork, streamguard.ReasonTruncated)
		if len(evs) != 5 || evs[4].Type != "error" {
			t.Fatalf("events %+v", evs)
		}
		// The frame classifies back to the same verdict.
		back := streamguard.ClassifyEvent([]byte(evs[4].Data))
		wantVerdict(t, back, streamguard.SourceNetwork, streamguard.ReasonTruncated)
	})
}
