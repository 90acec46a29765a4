package gatewaytest_test

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/streamguard/streamguard"
	"github.com/streamguard/streamguard/gatewaytest"
	"github.com/streamguard/streamguard/sse"
)

// The JSON streams through the gateway's stream faults, read through the
// guard: each fault counts records as events.
func TestJSONStreamFaults(t *testing.T) {
	cases := []struct {
		name   string
		model  http.Handler
		path   string
		fault  gatewaytest.Fault
		reason streamguard.Reason
		source streamguard.Source
		events int64
	}{
		{"ollama complete", gatewaytest.OllamaStream(5), "/api/chat", gatewaytest.Pass(), "", "", 6},
		{"ollama cut mid-line", gatewaytest.OllamaStream(5), "/api/chat", gatewaytest.Cut(2), streamguard.ReasonTruncated, streamguard.SourceNetwork, 2},
		{"ollama ends before done", gatewaytest.OllamaStream(5), "/api/chat", gatewaytest.EndEarly(3), streamguard.ReasonTruncated, streamguard.SourcePlatform, 3},
		{"ollama error line", gatewaytest.OllamaError(2, "llama runner process has terminated"), "/api/chat", gatewaytest.Pass(), streamguard.ReasonModelError, streamguard.SourceModel, 3},
		{"array complete", gatewaytest.JSONArrayStream(4), "/v1beta/models/m:streamGenerateContent", gatewaytest.Pass(), "", "", 4},
		{"array without ]", gatewaytest.JSONArrayStream(4), "/v1beta/models/m:streamGenerateContent", gatewaytest.EndEarly(2), streamguard.ReasonTruncated, streamguard.SourcePlatform, 2},
		{"array cut mid-element", gatewaytest.JSONArrayStream(4), "/v1beta/models/m:streamGenerateContent", gatewaytest.Cut(1), streamguard.ReasonTruncated, streamguard.SourceNetwork, 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			srv := gatewaytest.NewServer(c.model)
			defer srv.Close()
			srv.Script(c.fault)
			client := &http.Client{Transport: sse.NewTransport(srv.Client().Transport, sse.Config{})}
			defer client.CloseIdleConnections()
			resp, err := client.Post(srv.URL+c.path, "application/json", strings.NewReader(`{"model":"m"}`))
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			var se *streamguard.Error
			if c.reason == "" {
				if err != nil {
					t.Fatalf("err %v after %q", err, body)
				}
				return
			}
			if !errors.As(err, &se) || se.Reason != c.reason || se.Source != c.source || se.Events != c.events {
				t.Fatalf("verdict %v (events %d), want %s/%s after %d; body %q", err, se.Events, c.source, c.reason, c.events, body)
			}
			if strings.HasPrefix(c.path, "/api/") && len(body) > 0 && body[len(body)-1] != '\n' {
				t.Fatalf("half a record delivered: %q", body)
			}
		})
	}
}
