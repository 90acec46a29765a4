package middleware_test

import (
	"fmt"
	"io"
	"net/http"
	"testing"

	"github.com/streamguard/streamguard/middleware"
)

// A goroutine the handler left behind that sets the status, writes or
// flushes once the handler has returned gets an error and reaches nothing:
// net/http's writer is no longer the handler's (on HTTP/2 a Write after the
// server's handler returned panics, on HTTP/1 it races with the
// connection's next response).
func TestWriteAfterHandlerReturned(t *testing.T) {
	protocols(t, func(t *testing.T, h2 bool) {
		returned := make(chan struct{})
		late := make(chan string, 1)
		inner := func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/event-stream")
			io.WriteString(w, "data: one\n\n")
			go func() {
				defer func() {
					if p := recover(); p != nil {
						late <- fmt.Sprintf("panic: %v", p)
					}
				}()
				<-returned
				w.WriteHeader(http.StatusTeapot)
				_, werr := io.WriteString(w, "data: late\n\n")
				ferr := http.NewResponseController(w).Flush()
				late <- fmt.Sprintf("write: %v, flush: %v", werr, ferr)
			}()
		}
		var got string
		srv := serveLayer(t, h2, func(next http.Handler) http.Handler {
			h := middleware.NewHandler(next, middleware.ServerConfig{})
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				h.ServeHTTP(w, r)
				close(returned)
				got = <-late // before net/http finishes the response: no panic, no race of its own
			})
		}, inner)
		resp, b, err := rawGet(t, srv, "/")
		if err != nil || resp.StatusCode != http.StatusOK || string(b) != "data: one\n\n" {
			t.Errorf("got %d %q, %v; want 200 and the handler's one event", resp.StatusCode, b, err)
		}
		want := fmt.Sprintf("write: %v, flush: %v", http.ErrHandlerTimeout, http.ErrHandlerTimeout)
		if got != want {
			t.Fatalf("the late writes got %q, want %q", got, want)
		}
	})
}
