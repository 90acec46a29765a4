package middleware_test

import (
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/streamguard/streamguard"
	"github.com/streamguard/streamguard/middleware"
)

// callerKey is a credential of the caller's that no shape rule knows: only
// the request's own secrets find it.
const callerKey = "caller-key-7f3a9c"

// getWithKey calls srv with callerKey in X-Api-Key and returns the raw body.
func getWithKey(t *testing.T, srv interface{ Client() *http.Client }, url string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	req.Header.Set("X-Api-Key", callerKey)
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// An error whose Message is empty says what its Err says, and WriteError
// scrubs that text of the request's credentials too, and its RequestID:
// the failure frame, the failure record and the JSON error hold neither.
func TestWriteErrorScrubsErrAndRequestID(t *testing.T) {
	fail := func(w http.ResponseWriter, r *http.Request) {
		middleware.WriteError(w, r, &streamguard.Error{Source: streamguard.SourceModel, Reason: streamguard.ReasonUnavailable,
			RequestID: "req-" + r.Header.Get("X-Api-Key"),
			Err:       errors.New("unknown key " + r.Header.Get("X-Api-Key"))})
	}
	for _, tc := range []struct {
		name, ct, first string
	}{
		{"event stream", "text/event-stream", "data: {}\n\n"},
		{"JSON lines", "application/x-ndjson", "{}\n"},
		{"before the header", "", ""},
	} {
		protocols(t, func(t *testing.T, h2 bool) {
			t.Run(tc.name, func(t *testing.T) {
				srv := serve(t, h2, middleware.ServerConfig{}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					if tc.ct != "" {
						w.Header().Set("Content-Type", tc.ct)
						writeFlush(w, tc.first)
					}
					fail(w, r)
				}))
				status, body := getWithKey(t, srv, srv.URL)
				if strings.Contains(body, callerKey) {
					t.Fatalf("%d %q holds the caller's key", status, body)
				}
				if !strings.Contains(body, "unknown key REDACTED") {
					t.Errorf("%d %q does not say what failed", status, body)
				}
			})
		})
	}
}

// TestBasicCredentialScrubbed: a key sent as a Basic credential (curl -u
// KEY:), which a handler reads decoded and quotes, reaches neither the
// error body nor the panic log.
func TestBasicCredentialScrubbed(t *testing.T) {
	const key = "gw_live_4f9a0c7e21b84d55a3"
	var logBuf syncBuffer
	mux := http.NewServeMux()
	mux.HandleFunc("/writeerror", func(w http.ResponseWriter, r *http.Request) {
		user, _, _ := r.BasicAuth()
		middleware.WriteError(w, r, errors.New("no account for key "+user))
	})
	mux.HandleFunc("/panic", func(w http.ResponseWriter, r *http.Request) {
		user, _, _ := r.BasicAuth()
		panic("no account for key " + user)
	})
	srv := serve(t, false, middleware.ServerConfig{Logger: slog.New(slog.NewTextHandler(&logBuf, nil))}, mux)
	for _, path := range []string{"/writeerror", "/panic"} {
		req, _ := http.NewRequest("GET", srv.URL+path, nil)
		req.SetBasicAuth(key, "")
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if strings.Contains(string(b), key) || !strings.Contains(string(b), "no account for key") && path == "/writeerror" {
			t.Errorf("%s: error body %d %q", path, resp.StatusCode, b)
		}
	}
	if !strings.Contains(logBuf.String(), "handler panic") || strings.Contains(logBuf.String(), key) {
		t.Errorf("panic log %q: want the panic, without the Basic credential", strings.SplitN(logBuf.String(), " stack=", 2)[0])
	}
}
