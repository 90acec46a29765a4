package middleware_test

import (
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/streamguard/streamguard/middleware"
)

// TestBudgetEndsSlowUpload: a handler blocked reading the body of a client
// that uploads a byte at a time cannot see its context end; the budget
// still ends the response (504), instead of holding the handler and its
// connection for as long as the client trickles.
func TestBudgetEndsSlowUpload(t *testing.T) {
	protocols(t, func(t *testing.T, h2 bool) {
		for _, closeOnly := range []bool{false, true} {
			t.Run(map[bool]string{false: "read", true: "close"}[closeOnly], func(t *testing.T) {
				slowUpload(t, h2, closeOnly)
			})
		}
	})
}

// slowUpload posts a body trickled a byte every 50 ms to a handler that
// reads it all, or (closeOnly) only closes it, which on HTTP/1 reads what
// is left of it: the budget of 300 ms must end the response with 504
// (HTTP/2's Close reads nothing: the handler answers at once).
func slowUpload(t *testing.T, h2, closeOnly bool) {
	want := http.StatusGatewayTimeout
	if closeOnly && h2 {
		want = http.StatusOK
	}
	{
		srv := serve(t, h2, middleware.ServerConfig{Budget: 300 * time.Millisecond}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if closeOnly {
				r.Body.Close()
				io.WriteString(w, "ok")
				return
			}
			if _, err := io.ReadAll(r.Body); err != nil {
				middleware.WriteError(w, r, err)
				return
			}
			io.WriteString(w, "ok")
		}))
		pr, pw := io.Pipe()
		stop := make(chan struct{})
		defer close(stop)
		go func() { // a byte every 50 ms until the test ends
			defer pw.Close()
			tick := time.NewTicker(50 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-stop:
					return
				case <-tick.C:
					if _, err := pw.Write([]byte("x")); err != nil {
						return
					}
				}
			}
		}()
		done := make(chan int, 1)
		go func() {
			resp, err := srv.Client().Post(srv.URL, "application/json", pr)
			if err != nil {
				done <- 0
				return
			}
			resp.Body.Close()
			done <- resp.StatusCode
		}()
		select {
		case status := <-done:
			if status != want {
				t.Errorf("status %d, want %d", status, want)
			}
		case <-time.After(20 * time.Second):
			t.Fatal("budget 300 ms: no answer after 20 s, the handler still reading the trickled body")
		}
	}
}
