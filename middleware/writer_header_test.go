package middleware_test

import (
	"io"
	"net/http"
	"testing"

	"github.com/streamguard/streamguard"
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

// Trailers set through a header map the handler held from before the body
// reach the client, as they do with net/http's own writer.
func TestTrailerThroughHeldHeader(t *testing.T) {
	protocols(t, func(t *testing.T, h2 bool) {
		srv := serve(t, h2, middleware.ServerConfig{}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			h := w.Header()
			h.Set("Trailer", "X-Checksum")
			h.Set("Content-Type", "text/plain")
			io.WriteString(w, "body")
			http.NewResponseController(w).Flush()
			h.Set("X-Checksum", "abc")
			h.Set(http.TrailerPrefix+"X-Late", "def")
		}))
		resp, b, err := rawGet(t, srv, "/")
		if err != nil || string(b) != "body" {
			t.Fatalf("%q, %v", b, err)
		}
		if got, late := resp.Trailer.Get("X-Checksum"), resp.Trailer.Get("X-Late"); got != "abc" || late != "def" {
			t.Fatalf("trailers %v, want X-Checksum abc and X-Late def", resp.Trailer)
		}
	})
}

// A field the handler deletes after a 1xx is not on the final header: the
// final header is the handler's map as it is then, not the union of the
// two.
func TestFieldDeletedAfterEarlyHints(t *testing.T) {
	protocols(t, func(t *testing.T, h2 bool) {
		srv := serve(t, h2, middleware.ServerConfig{}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Link", "</style.css>; rel=preload; as=style")
			w.WriteHeader(http.StatusEarlyHints)
			w.Header().Del("Link")
			w.WriteHeader(http.StatusOK)
			io.WriteString(w, "ok")
		}))
		resp, b, err := rawGet(t, srv, "/")
		if err != nil || resp.StatusCode != http.StatusOK || string(b) != "ok" {
			t.Fatalf("%d %q, %v", resp.StatusCode, b, err)
		}
		if link := resp.Header.Get("Link"); link != "" {
			t.Fatalf("the 200 has the Link deleted after the 103: %q", link)
		}
	})
}

// Fields a middleware outside NewHandler set are in the handler's header
// map: it sees them and can delete or change them.
func TestOuterFieldsInHandlerHeader(t *testing.T) {
	protocols(t, func(t *testing.T, h2 bool) {
		var seen string
		srv := serveLayer(t, h2, func(next http.Handler) http.Handler {
			h := middleware.NewHandler(next, middleware.ServerConfig{})
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("X-Frame-Options", "DENY")
				w.Header().Set("X-Served-By", "outer")
				h.ServeHTTP(w, r)
			})
		}, func(w http.ResponseWriter, r *http.Request) {
			seen = w.Header().Get("X-Frame-Options")
			w.Header().Del("X-Frame-Options")
			io.WriteString(w, "ok")
		})
		resp, _, err := rawGet(t, srv, "/")
		if err != nil {
			t.Fatal(err)
		}
		if seen != "DENY" {
			t.Errorf("the handler saw X-Frame-Options %q, want the outer middleware's DENY", seen)
		}
		if got := resp.Header.Get("X-Frame-Options"); got != "" {
			t.Errorf("X-Frame-Options %q, deleted by the handler", got)
		}
		if got := resp.Header.Get("X-Served-By"); got != "outer" {
			t.Errorf("X-Served-By %q, want the outer middleware's", got)
		}
	})
}

// WriteError before the header keeps the fields the handler set, as
// http.Error does: a relay passing an upstream's 429 or 503 on keeps its
// Retry-After. The fields that describe the body are the JSON error's.
func TestWriteErrorKeepsHandlerFields(t *testing.T) {
	protocols(t, func(t *testing.T, h2 bool) {
		srv := serve(t, h2, middleware.ServerConfig{}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			h := w.Header()
			h.Set("Retry-After", "7")
			h.Set("Retry-After-Ms", "7000")
			h.Set("X-Request-Id", "req-1")
			h.Set("Content-Type", "text/event-stream")
			h.Set("Content-Encoding", "gzip")
			h.Set("Content-Length", "12345")
			h.Set("Trailer", "X-Checksum")
			h.Set("X-Checksum", "abc")
			h.Set(http.TrailerPrefix+"X-Digest", "def")
			h.Set("Cache-Control", "public, max-age=3600")
			h.Set("Expires", "Thu, 01 Dec 2099 16:00:00 GMT")
			middleware.WriteError(w, r, &streamguard.Error{StatusCode: http.StatusTooManyRequests, Source: streamguard.SourceModel,
				Reason: streamguard.ReasonRateLimited, Message: "slow down"})
		}))
		resp, b, err := rawGet(t, srv, "/")
		if err != nil || resp.StatusCode != http.StatusTooManyRequests || jsonError(t, b) != "slow down" {
			t.Fatalf("%d %q, %v", resp.StatusCode, b, err)
		}
		for k, want := range map[string]string{"Retry-After": "7", "Retry-After-Ms": "7000", "X-Request-Id": "req-1",
			"Content-Type": "application/json", "Content-Encoding": "", "Trailer": "", "Cache-Control": "no-store", "Expires": ""} {
			if got := resp.Header.Get(k); got != want {
				t.Errorf("%s: %q, want %q", k, got, want)
			}
		}
		if len(resp.Trailer) != 0 {
			t.Errorf("the JSON error came with the handler's trailers %v", resp.Trailer)
		}
	})
}
