package retry_test

import (
	"context"
	"math"
	"net/http"
	"sync"
	"testing"

	"github.com/streamguard/streamguard/gatewaytest"
	"github.com/streamguard/streamguard/retry"
)

// Issue bullet: storm control. Throttle is a gRFC A6 token bucket shared by
// every request of a transport: a retryable failure costs a token, a success
// refunds tokenRatio; at half the tokens or below, no retries.
func TestThrottle(t *testing.T) {
	t.Run("exhausted across concurrent requests", func(t *testing.T) {
		gw := gatewaytest.NewServer(gatewaytest.JSON(200, `{}`))
		defer gw.Close()
		gw.Choose = func(int64, *http.Request) gatewaytest.Fault { return gatewaytest.Draining(0) }
		th := retry.NewThrottle(10, 0.1)
		rt := retry.NewTransport(gw.Client().Transport, fast(retry.Policy{MaxAttempts: 5, Throttle: th}))

		// 10 tokens: the failures that leave 9, 8, 7 and 6 may retry, every
		// later one is throttled. Whatever the interleaving, 8 requests
		// make 8 + 4 attempts, where 8 x 5 would be unthrottled.
		const requests = 8
		var wg sync.WaitGroup
		start := make(chan struct{})
		statuses := make(chan int, requests)
		for range requests {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
				defer cancel()
				req, _ := http.NewRequestWithContext(ctx, "GET", gw.URL+"/predict", nil)
				resp, err := rt.RoundTrip(req)
				if err != nil {
					t.Error(err)
					return
				}
				resp.Body.Close()
				statuses <- resp.StatusCode
			}()
		}
		close(start)
		wg.Wait()
		close(statuses)
		for s := range statuses {
			if s != 503 {
				t.Errorf("status %d, want 503", s)
			}
		}
		if got := gw.Requests(); got != requests+4 {
			t.Errorf("gateway saw %d requests, want %d", got, requests+4)
		}
		if got := th.Tokens(); got != 0 {
			t.Errorf("%v tokens left, want 0", got)
		}
	})

	t.Run("successes refill it and retries resume", func(t *testing.T) {
		gw := gatewaytest.NewServer(gatewaytest.JSON(200, `{}`))
		defer gw.Close()
		th := retry.NewThrottle(4, 0.5)
		rt := retry.NewTransport(gw.Client().Transport, fast(retry.Policy{MaxAttempts: 2, Throttle: th}))
		get := func() int {
			resp := mustDo(t, rt, "GET", gw.URL+"/predict")
			readAll(t, resp)
			return resp.StatusCode
		}
		// 4 -> 3 (retry) -> 2 (throttled, attempts spent anyway).
		gw.Script(gatewaytest.Draining(0), gatewaytest.Draining(0))
		if s := get(); s != 503 || th.Tokens() != 2 {
			t.Fatalf("status %d, %v tokens; want 503, 2", s, th.Tokens())
		}
		// At half, a failure is not retried: 2 -> 1.
		gw.Script(gatewaytest.Draining(0))
		if s := get(); s != 503 || th.Tokens() != 1 || gw.Requests() != 3 {
			t.Fatalf("status %d, %v tokens, %d requests; want 503, 1, 3", s, th.Tokens(), gw.Requests())
		}
		// Three successes: 1 -> 2.5, above half again.
		for range 3 {
			if s := get(); s != 200 {
				t.Fatalf("status %d", s)
			}
		}
		if th.Tokens() != 2.5 {
			t.Fatalf("%v tokens, want 2.5", th.Tokens())
		}
		// 2.5 -> 1.5 is at or below half: throttled again.
		gw.Script(gatewaytest.Draining(0))
		if s := get(); s != 503 {
			t.Fatalf("status %d, want 503 (throttled)", s)
		}
		// Refill to the cap: 1.5 + 8 x 0.5 is over 4.
		for range 8 {
			get()
		}
		if th.Tokens() != 4 {
			t.Fatalf("%v tokens, want the cap 4", th.Tokens())
		}
		gw.Script(gatewaytest.Draining(0))
		before := gw.Requests()
		if s := get(); s != 200 || gw.Requests()-before != 2 {
			t.Fatalf("status %d after %d requests, want 200 after a retry", s, gw.Requests()-before)
		}
	})

	t.Run("non-retryable failures cost nothing", func(t *testing.T) {
		gw := gatewaytest.NewServer(gatewaytest.JSON(200, `{}`))
		defer gw.Close()
		th := retry.NewThrottle(2, 1)
		rt := retry.NewTransport(gw.Client().Transport, fast(retry.Policy{Throttle: th}))
		gw.Script(gatewaytest.Status(404, `{"error":"not found"}`), gatewaytest.ClientClosed(), gatewaytest.GatewayTimeout(0))
		for range 3 {
			readAll(t, mustDo(t, rt, "GET", gw.URL+"/predict"))
		}
		if th.Tokens() != 2 {
			t.Errorf("%v tokens, want 2", th.Tokens())
		}
	})

	t.Run("NewThrottle rejects invalid buckets", func(t *testing.T) {
		for _, c := range []struct{ max, ratio float64 }{
			{0, 1}, {-1, 1}, {10, 0}, {10, -0.1}, {math.NaN(), 1}, {10, math.NaN()}, {math.Inf(1), 1}, {10, math.Inf(1)}, {2e12, 1},
		} {
			func() {
				defer func() {
					if recover() == nil {
						t.Errorf("NewThrottle(%v, %v) did not panic", c.max, c.ratio)
					}
				}()
				retry.NewThrottle(c.max, c.ratio)
			}()
		}
		if got := retry.NewThrottle(10, 0.0001).Tokens(); got != 10 {
			t.Errorf("a new throttle holds %v tokens, want 10", got)
		}
	})
}
