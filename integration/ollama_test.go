package integration

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/ollama/ollama/api"

	"github.com/streamguard/streamguard"
	"github.com/streamguard/streamguard/gatewaytest"
	"github.com/streamguard/streamguard/middleware"
	"github.com/streamguard/streamguard/sse"
)

// ollamaCase is one way an Ollama /api/chat stream ends, as Ollama's own
// Go client (github.com/ollama/ollama/api) sees it through the stack.
type ollamaCase struct {
	name   string
	model  http.Handler
	fault  gatewaytest.Fault
	reason streamguard.Reason // "": success
	source streamguard.Source
}

func ollamaCases() []ollamaCase {
	return []ollamaCase{
		{"healthy", gatewaytest.OllamaStream(5), gatewaytest.Pass(), "", ""},
		{"cut mid-line", gatewaytest.OllamaStream(5), gatewaytest.Cut(2), streamguard.ReasonTruncated, streamguard.SourceNetwork},
		{"cut at a line boundary before done", gatewaytest.OllamaStream(5), gatewaytest.EndEarly(3), streamguard.ReasonTruncated, streamguard.SourcePlatform},
		{"stalled", gatewaytest.OllamaStream(5), gatewaytest.Stall(2), streamguard.ReasonStalled, streamguard.SourcePlatform},
		{"in-band error", gatewaytest.OllamaError(2, "llama runner process has terminated: signal: killed"), gatewaytest.Pass(), streamguard.ReasonModelError, streamguard.SourceModel},
	}
}

func ollamaChat(t *testing.T, srv *gatewaytest.Server, hc *http.Client) (int, error) {
	t.Helper()
	u, _ := url.Parse(srv.URL)
	client := api.NewClient(u, hc)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stream := true
	n := 0
	err := client.Chat(ctx, &api.ChatRequest{Model: "llama3.2", Stream: &stream,
		Messages: []api.Message{{Role: "user", Content: "hi"}}}, func(r api.ChatResponse) error {
		n++
		return nil
	})
	return n, err
}

// TestOllamaClientUnguarded measures what Ollama's own client reports
// without the guard: a cut at a line boundary and a stall are successes (its
// reader stops at a read error without returning it), a cut mid-line an
// error whose message is the half line, unattributed.
func TestOllamaClientUnguarded(t *testing.T) {
	for _, c := range ollamaCases() {
		t.Run(c.name, func(t *testing.T) {
			srv := gatewaytest.NewServer(c.model)
			defer srv.Close()
			srv.Script(c.fault)
			hc := srv.Client()
			if c.reason == streamguard.ReasonStalled {
				hc = &http.Client{Transport: hc.Transport, Timeout: 300 * time.Millisecond}
			}
			defer hc.CloseIdleConnections()
			n, err := ollamaChat(t, srv, hc)
			t.Logf("unguarded: %d records, err %v", n, err)
			// Measured: a cut mid-line is an error whose text is the half
			// line (its Scanner hands it over at the read error, and it
			// fails to decode); the in-band error is its message; a cut
			// at a line boundary and a stall (ended by the client's own
			// timeout) are successes.
			midLine := c.fault.Kind() == gatewaytest.KindCut
			if (err != nil) != (midLine || c.reason == streamguard.ReasonModelError) {
				t.Errorf("unguarded %s: err %v, measured otherwise before", c.name, err)
			}
		})
	}
}

// TestOllamaClientGuarded: through the client stack with FailureEvent on,
// Ollama's client returns every failure as an error naming its source and
// reason, and a healthy stream as success. With FailureEvent off, its reader
// drops the guard's Read error: the failure record is what it needs.
func TestOllamaClientGuarded(t *testing.T) {
	for _, failureEvent := range []bool{true, false} {
		for _, c := range ollamaCases() {
			t.Run(c.name, func(t *testing.T) {
				srv := gatewaytest.NewServer(c.model)
				defer srv.Close()
				srv.Script(c.fault)
				hc := middleware.NewClient(middleware.Config{Base: srv.Client().Transport,
					Stream: sse.Config{FailureEvent: failureEvent, IdleTimeout: 200 * time.Millisecond}})
				defer hc.CloseIdleConnections()
				n, err := ollamaChat(t, srv, hc)
				t.Logf("failure record %v: %d records, err %v", failureEvent, n, err)
				if c.reason == "" {
					if err != nil || n != 6 {
						t.Fatalf("healthy: %d records, err %v", n, err)
					}
					return
				}
				if !failureEvent && c.reason != streamguard.ReasonModelError {
					if err != nil {
						t.Fatalf("without the record Ollama's client returned %v: the finding changed", err)
					}
					return
				}
				want := string(c.source) + " " + string(c.reason)
				if err == nil || (c.reason != streamguard.ReasonModelError && !strings.Contains(err.Error(), want)) {
					t.Fatalf("err %v, want one naming %q", err, want)
				}
			})
		}
	}
}

// TestOllamaDecoderGuarded: a generic JSON-lines consumer,
// encoding/json.Decoder over the guarded body, gets the *streamguard.Error
// from Decode (errors.As) after the whole records, and never half a record.
func TestOllamaDecoderGuarded(t *testing.T) {
	for _, c := range ollamaCases() {
		t.Run(c.name, func(t *testing.T) {
			srv := gatewaytest.NewServer(c.model)
			defer srv.Close()
			srv.Script(c.fault)
			hc := middleware.NewClient(middleware.Config{Base: srv.Client().Transport, Stream: sse.Config{IdleTimeout: 200 * time.Millisecond}})
			defer hc.CloseIdleConnections()
			resp, err := hc.Post(srv.URL+"/api/chat", "application/json", strings.NewReader(`{"model":"llama3.2"}`))
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			dec := json.NewDecoder(resp.Body)
			var recs int
			for {
				var r api.ChatResponse
				if err = dec.Decode(&r); err != nil {
					break
				}
				recs++
			}
			if c.reason == "" {
				if err != io.EOF || recs != 6 {
					t.Fatalf("healthy: %d records, %v", recs, err)
				}
				return
			}
			var se *streamguard.Error
			if !errors.As(err, &se) || se.Reason != c.reason || se.Source != c.source {
				t.Fatalf("err %v (%T), want %s/%s", err, err, c.source, c.reason)
			}
		})
	}
}
