package middleware_test

import (
	"io"
	"net/http"
	"testing"

	"github.com/streamguard/streamguard/middleware"
)

// A status net/http refuses (below 100, above 999) panics in the handler as
// net/http's own check does, before anything is sent: the Recoverer still
// answers 500, rather than aborting a response that never started.
func TestInvalidStatusAnswered500(t *testing.T) {
	protocols(t, func(t *testing.T, h2 bool) {
		srv := serve(t, h2, middleware.ServerConfig{}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain")
			w.WriteHeader(42)
			io.WriteString(w, "never")
		}))
		resp, b, err := rawGet(t, srv, "/")
		if err != nil {
			t.Fatalf("the response was aborted (%v): %q", err, b)
		}
		if resp.StatusCode != http.StatusInternalServerError || jsonError(t, b) != "internal server error" {
			t.Fatalf("got %d %q, want 500 and the platform's JSON error", resp.StatusCode, b)
		}
	})
}
