package middleware_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
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

// TestBudgetAcrossRedirects: the budget covers a request's redirects, as
// http.Client.Timeout does: two 1.5 s hops under a 2 s budget fail, and
// the second hop is told the time left, not the whole budget again.
func TestBudgetAcrossRedirects(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var sent []string
		base := roundTripFunc(func(r *http.Request) (*http.Response, error) {
			sent = append(sent, r.Header.Get(middleware.TimeoutHeader))
			select {
			case <-time.After(1500 * time.Millisecond):
			case <-r.Context().Done():
				return nil, r.Context().Err()
			}
			if r.URL.Path == "/a" {
				return &http.Response{StatusCode: 307, Header: http.Header{"Location": {"/b"}}, Body: http.NoBody, Request: r}, nil
			}
			return &http.Response{StatusCode: 200, Header: http.Header{}, Body: io.NopCloser(strings.NewReader("ok")), Request: r}, nil
		})
		start := time.Now()
		resp, err := middleware.NewClient(middleware.Config{Base: base, Budget: 2 * time.Second}).Get("http://gateway.test/a")
		if err == nil {
			resp.Body.Close()
		}
		if took := time.Since(start); err == nil || took != 2*time.Second {
			t.Fatalf("%v after %v under a 2 s budget; Request-Timeout-Ms per hop %v", err, took, sent)
		}
		if len(sent) != 2 || sent[0] != "2000" || sent[1] != "500" {
			t.Errorf("Request-Timeout-Ms per hop %v, want [2000 500]", sent)
		}
	})
}
