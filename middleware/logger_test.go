package middleware_test

import (
	"bytes"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/streamguard/streamguard/gatewaytest"
	"github.com/streamguard/streamguard/middleware"
)

// TestConfigLogger: the client config's Logger reaches the retry layer:
// one line per retry, one for the final failure, and never the key.
func TestConfigLogger(t *testing.T) {
	srv := gatewaytest.NewServer(gatewaytest.ChatStream(3))
	defer srv.Close()
	var logs bytes.Buffer
	client := clientFor(t, srv, middleware.Config{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	srv.Script(gatewaytest.Draining(0), gatewaytest.Draining(0), gatewaytest.Draining(0), gatewaytest.Draining(0), gatewaytest.Draining(0))
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/v1/chat/completions?api_key=sk-query-secret-123", strings.NewReader(`{}`))
	req.Header.Set("Authorization", "Bearer sk-header-secret-456")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	out := logs.String()
	if n := strings.Count(out, "level=WARN"); n != 4 {
		t.Errorf("%d retry lines, want 4:\n%s", n, out)
	}
	if n := strings.Count(out, "level=ERROR"); n != 1 {
		t.Errorf("%d final failure lines, want 1:\n%s", n, out)
	}
	for _, secret := range []string{"sk-query-secret-123", "sk-header-secret-456"} {
		if strings.Contains(out, secret) {
			t.Fatalf("the log holds %q:\n%s", secret, out)
		}
	}
}
