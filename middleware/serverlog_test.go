package middleware_test

import (
	"bytes"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/streamguard/streamguard/middleware"
)

// syncBuffer is a log destination safe for the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// A panic's value is logged scrubbed of the request's credentials: nothing
// logged holds a header value.
func TestPanicLogScrubbed(t *testing.T) {
	var log syncBuffer
	srv := serve(t, false, middleware.ServerConfig{Logger: slog.New(slog.NewTextHandler(&log, nil))},
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			panic("no account for key " + r.Header.Get("X-Api-Key"))
		}))
	status, _ := getWithKey(t, srv, srv.URL)
	if status != http.StatusInternalServerError {
		t.Fatalf("status %d, want 500", status)
	}
	got := log.String()
	if !strings.Contains(got, "no account for key REDACTED") || strings.Contains(got, callerKey) {
		t.Fatalf("log %q", got)
	}
}
