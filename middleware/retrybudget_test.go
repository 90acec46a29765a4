package middleware_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/streamguard/streamguard/middleware"
	"github.com/streamguard/streamguard/retry"
)

// The retry budget the client stack gives each client by default, against
// loopback servers that count the attempts they receive. Every request's
// context is bounded, so that a bug fails the test instead of hanging it.

const (
	rbRequests = 200              // concurrent requests per test
	rbTimeout  = 10 * time.Second // bounds each request
)

// rbPolicy is the zero policy with 1 ms waits: the defaults otherwise (5
// attempts, 502 and 503), so that only the budget limits the retries.
func rbPolicy() retry.Policy {
	return retry.Policy{Backoff: func() backoff.BackOff { return backoff.NewConstantBackOff(time.Millisecond) }}
}

// rbClient returns middleware.NewClient(cfg), its idle connections closed
// when the test ends.
func rbClient(t *testing.T, cfg middleware.Config) *http.Client {
	t.Helper()
	c := middleware.NewClient(cfg)
	t.Cleanup(c.CloseIdleConnections)
	return c
}

// rbServer is a loopback server that counts the attempts it receives and
// answers each as answer says, given the request's X-Test-Id and how many
// times that id was seen before this attempt.
type rbServer struct {
	*httptest.Server
	attempts atomic.Int64
	mu       sync.Mutex
	seen     map[string]int
}

func newRBServer(t *testing.T, answer func(id string, seen int) int) *rbServer {
	t.Helper()
	s := &rbServer{seen: map[string]int{}}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.attempts.Add(1)
		io.Copy(io.Discard, r.Body)
		id := r.Header.Get("X-Test-Id")
		s.mu.Lock()
		n := s.seen[id]
		s.seen[id]++
		s.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		status := answer(id, n)
		w.WriteHeader(status)
		if status == http.StatusServiceUnavailable {
			io.WriteString(w, `{"error":"Instance is draining: please retry on another instance"}`)
			return
		}
		io.WriteString(w, `{"ok":true}`)
	}))
	t.Cleanup(s.Close)
	return s
}

// timesSeen returns how many attempts the server received for id.
func (s *rbServer) timesSeen(id string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.seen[id]
}

// rbPost sends one inference request with id, reads its body and returns its
// status.
func rbPost(c *http.Client, url, id string) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), rbTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "POST", url+"/predict", strings.NewReader(`{"prompt":"hi"}`))
	if err != nil {
		return 0, err
	}
	req.Header.Set("X-Test-Id", id)
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return 0, err
	}
	return resp.StatusCode, nil
}

// rbStorm sends n requests at once, with ids 0 to n-1, each through do, and
// returns their statuses by id.
func rbStorm(t *testing.T, n int, do func(id int) (int, error)) []int {
	t.Helper()
	statuses := make([]int, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			s, err := do(i)
			if err != nil {
				t.Errorf("request %d: %v", i, err)
			}
			statuses[i] = s
		}()
	}
	close(start)
	wg.Wait()
	return statuses
}

func rbCount(statuses []int, status int) int {
	n := 0
	for _, s := range statuses {
		if s == status {
			n++
		}
	}
	return n
}

// Against a gateway that answers 503 to everything, 200 concurrent requests
// through a default client make about 200 attempts, not 1,000.
//
// The bound needs no allowance for concurrency: the first wave of 200
// attempts is the 200 requests themselves, and the bucket's decisions are
// atomic, so that however the failures interleave, exactly those that leave
// it at 19 to 11 of its 20 tokens are retried. That is 9 retries, and 209
// attempts, the same at 200 concurrent requests as at 200 sequential ones.
func TestRetryBudgetStorm(t *testing.T) {
	srv := newRBServer(t, func(string, int) int { return http.StatusServiceUnavailable })
	c := rbClient(t, middleware.Config{Retry: rbPolicy()})
	statuses := rbStorm(t, rbRequests, func(i int) (int, error) { return rbPost(c, srv.URL, strconv.Itoa(i)) })
	if n := rbCount(statuses, 503); n != rbRequests {
		t.Errorf("%d of %d requests ended 503", n, rbRequests)
	}
	attempts := srv.attempts.Load()
	t.Logf("%d requests at 100 %% 503: %d attempts", rbRequests, attempts)
	if limit := int64(rbRequests * 12 / 10); attempts > limit {
		t.Errorf("%d attempts for %d requests, want at most %d (1.2x)", attempts, rbRequests, limit)
	}
	if want := int64(rbRequests + retry.DefaultThrottleTokens/2 - 1); attempts != want {
		t.Errorf("%d attempts, want %d: the requests and 9 retries", attempts, want)
	}
}

// NoRetryBudget restores the storm: every request retries to its limit.
func TestRetryBudgetOff(t *testing.T) {
	srv := newRBServer(t, func(string, int) int { return http.StatusServiceUnavailable })
	c := rbClient(t, middleware.Config{Retry: rbPolicy(), NoRetryBudget: true})
	statuses := rbStorm(t, rbRequests, func(i int) (int, error) { return rbPost(c, srv.URL, strconv.Itoa(i)) })
	if n := rbCount(statuses, 503); n != rbRequests {
		t.Errorf("%d of %d requests ended 503", n, rbRequests)
	}
	attempts := srv.attempts.Load()
	t.Logf("%d requests at 100 %% 503 without a budget: %d attempts", rbRequests, attempts)
	if want := int64(rbRequests * retry.DefaultMaxAttempts); attempts != want {
		t.Errorf("%d attempts, want %d", attempts, want)
	}
}

// A healthy service never notices the budget: every failed request is
// retried and succeeds.
func TestRetryBudgetHealthy(t *testing.T) {
	t.Run("5 % of requests fail once, spread in time", func(t *testing.T) {
		// 1 request in 20 has its first attempt answered 503. The failing
		// requests run concurrently with all the others but one at a time
		// among themselves, as failures a few percent apart in time do:
		// each costs a token and its successful retry refunds 0.2, so the
		// bucket stays above 11 tokens however the rest interleave. (Ten
		// failures at the same instant, before any success, would stop the
		// retries at the tenth: see the burst below.)
		const every = 20
		srv := newRBServer(t, func(id string, seen int) int {
			if i, _ := strconv.Atoi(id); i%every == 0 && seen == 0 {
				return http.StatusServiceUnavailable
			}
			return http.StatusOK
		})
		c := rbClient(t, middleware.Config{Retry: rbPolicy()})
		var failing sync.Mutex
		statuses := rbStorm(t, rbRequests, func(i int) (int, error) {
			if i%every == 0 {
				failing.Lock()
				defer failing.Unlock()
			}
			return rbPost(c, srv.URL, strconv.Itoa(i))
		})
		if n := rbCount(statuses, 200); n != rbRequests {
			t.Errorf("%d of %d requests succeeded", n, rbRequests)
		}
		for i := 0; i < rbRequests; i += every {
			if n := srv.timesSeen(strconv.Itoa(i)); n != 2 {
				t.Errorf("request %d was sent %d times, want 2", i, n)
			}
		}
		if got, want := srv.attempts.Load(), int64(rbRequests+rbRequests/every); got != want {
			t.Errorf("%d attempts, want %d", got, want)
		}
	})

	t.Run("a burst of 9 simultaneous failures", func(t *testing.T) {
		// 9 of the 200 concurrent requests (4.5 %) fail their first attempt,
		// all at once: 9 tokens of 20, so every one is retried, whatever
		// the order.
		failing := map[string]bool{}
		for i := range retry.DefaultThrottleTokens/2 - 1 {
			failing[strconv.Itoa(i*(rbRequests/10))] = true
		}
		srv := newRBServer(t, func(id string, seen int) int {
			if failing[id] && seen == 0 {
				return http.StatusServiceUnavailable
			}
			return http.StatusOK
		})
		c := rbClient(t, middleware.Config{Retry: rbPolicy()})
		statuses := rbStorm(t, rbRequests, func(i int) (int, error) { return rbPost(c, srv.URL, strconv.Itoa(i)) })
		if n := rbCount(statuses, 200); n != rbRequests {
			t.Errorf("%d of %d requests succeeded", n, rbRequests)
		}
		if got, want := srv.attempts.Load(), int64(rbRequests+len(failing)); got != want {
			t.Errorf("%d attempts, want %d", got, want)
		}
	})
}

// Each client has a budget of its own, shared by all its requests; one set
// in Config.Retry.Throttle is used as it is, shared by every client given
// it.
func TestRetryBudgetPerClient(t *testing.T) {
	// Ids down-* are answered 503 every time; any other id fails its first
	// attempt only.
	srv := newRBServer(t, func(id string, seen int) int {
		if strings.HasPrefix(id, "down") || seen == 0 {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	})
	exhaust := func(c *http.Client, name string) {
		t.Helper()
		for i := range retry.DefaultThrottleTokens {
			if s, err := rbPost(c, srv.URL, fmt.Sprintf("down-%s-%d", name, i)); err != nil || s != 503 {
				t.Fatalf("%d %v", s, err)
			}
		}
	}
	flaky := func(c *http.Client, id string) int {
		t.Helper()
		s, err := rbPost(c, srv.URL, id)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}

	t.Run("default budgets", func(t *testing.T) {
		cfg := middleware.Config{Retry: rbPolicy()}
		a, b := rbClient(t, cfg), rbClient(t, cfg)
		exhaust(a, "a")
		if s := flaky(a, "flaky-a"); s != 503 {
			t.Errorf("the exhausted client retried: %d", s)
		}
		if s := flaky(b, "flaky-b"); s != 200 {
			t.Errorf("a client with the same Config shares the exhausted budget: %d", s)
		}
	})

	t.Run("a throttle set in the policy", func(t *testing.T) {
		p := rbPolicy()
		p.Throttle = retry.NewThrottle(4, 0.1)
		a, b := rbClient(t, middleware.Config{Retry: p}), rbClient(t, middleware.Config{Retry: p, NoRetryBudget: true})
		exhaust(a, "shared")
		if s := flaky(b, "flaky-shared"); s != 503 {
			t.Errorf("the shared throttle did not stop the other client's retries: %d", s)
		}
		if got := p.Throttle.Tokens(); got != 0 {
			t.Errorf("%v tokens left, want 0", got)
		}
	})
}
