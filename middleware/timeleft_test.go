package middleware_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/streamguard/streamguard/middleware"
)

// TestTimeLeftOnRetryAndResume: each attempt of a request tells the server
// the time its budget has left then: a retry a second after a 503, and a
// resume of a stream cut a second after its first event, carry a
// Request-Timeout-Ms a second smaller than the attempt before.
func TestTimeLeftOnRetryAndResume(t *testing.T) {
	name := strings.Repeat("b", 26)
	var mu sync.Mutex
	var sent []int
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ms, _ := strconv.Atoi(r.Header.Get(middleware.TimeoutHeader))
		mu.Lock()
		attempt := len(sent)
		sent = append(sent, ms)
		mu.Unlock()
		switch attempt {
		case 0:
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusServiceUnavailable)
		case 1:
			w.Header().Set("Content-Type", "text/event-stream")
			w.Header().Set("Resumable-Stream", name)
			io.WriteString(w, "id: "+name+".1\ndata: e1\n\n")
			w.(http.Flusher).Flush()
			time.Sleep(time.Second)
			panic(http.ErrAbortHandler) // cut
		default:
			w.Header().Set("Content-Type", "text/event-stream")
			w.Header().Set("Resumable-Stream", name)
			io.WriteString(w, "id: "+name+".2\ndata: e2\n\n")
		}
	}))
	defer srv.Close()
	resp, err := middleware.NewClient(middleware.Config{Budget: 20 * time.Second}).Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || !strings.Contains(string(body), "data: e2") {
		t.Fatalf("%q, %v", body, err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(sent) != 3 || sent[0] > 20000 || sent[1] > sent[0]-900 || sent[2] > sent[1]-900 {
		t.Fatalf("Request-Timeout-Ms of the first attempt, the retry and the resume: %v", sent)
	}
}
