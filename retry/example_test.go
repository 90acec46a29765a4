package retry_test

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/streamguard/streamguard"
	"github.com/streamguard/streamguard/gatewaytest"
	"github.com/streamguard/streamguard/retry"
)

// A client that retries the platform's transient failures: here a draining
// replica and a crashed container, then the model answers. The waits are
// shortened for the example; leave Backoff nil for the default schedule (1 s,
// doubling, capped at 30 s, with jitter).
func ExampleNewTransport() {
	gw := gatewaytest.NewServer(gatewaytest.JSON(200, `{"output":"hello"}`))
	defer gw.Close()
	gw.Script(gatewaytest.Draining(0), gatewaytest.Unreachable())

	client := &http.Client{
		Transport: retry.NewTransport(gw.Client().Transport, retry.Policy{
			Backoff: func() backoff.BackOff { return backoff.NewConstantBackOff(time.Millisecond) },
			OnRetry: func(a retry.Attempt) {
				fmt.Printf("attempt %d: %v\n", a.N, a.Err)
			},
		}),
		Timeout: streamguard.SyncBudget,
	}
	resp, err := client.Post(gw.URL+"/production/predict", "application/json", strings.NewReader(`{"prompt":"hi"}`))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	fmt.Println(resp.StatusCode, string(body))
	// Output:
	// attempt 1: streamguard: 503 platform unavailable: Instance is draining: please retry on another instance (mostly transient (draining, routing or not ready): retry with exponential backoff)
	// attempt 2: streamguard: 502 platform unreachable after 2 attempts: Error making prediction (check the model logs for a crash or OOMKilled; if they are clean, retry)
	// 200 {"output":"hello"}
}

// When the retries are spent, the last response comes back with a nil error
// and its body intact; streamguard.Check says what it was and how many
// attempts were made.
func ExampleNewTransport_spent() {
	gw := gatewaytest.NewServer(gatewaytest.JSON(200, `{}`))
	defer gw.Close()
	gw.Script(gatewaytest.Draining(0), gatewaytest.Draining(0), gatewaytest.Draining(0))

	client := &http.Client{Transport: retry.NewTransport(gw.Client().Transport, retry.Policy{
		MaxAttempts: 3,
		Backoff:     func() backoff.BackOff { return backoff.NewConstantBackOff(time.Millisecond) },
	})}
	resp, err := client.Get(gw.URL + "/production/predict")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer resp.Body.Close()
	var se *streamguard.Error
	if errors.As(streamguard.Check(resp), &se) {
		fmt.Println(se.StatusCode, se.Source, se.Reason, "after", se.Attempts, "attempts")
	}
	// Output:
	// 503 platform unavailable after 3 attempts
}

// The platform's own client guidance also retries 429, 500 and 504, and
// shares a retry budget among requests so that an outage is not multiplied
// by the attempts.
func ExamplePolicy() {
	_ = retry.NewTransport(nil, retry.Policy{
		Statuses:    []int{429, 500, 502, 503, 504},
		MaxAttempts: 5,
		Throttle:    retry.NewThrottle(10, 0.1),
	})
}

// RetryAfter reads a server's hint; the transport caps it with
// Policy.MaxRetryAfter.
func ExampleRetryAfter() {
	h := http.Header{}
	h.Set("Retry-After", "120")
	d, ok := retry.RetryAfter(h, time.Now())
	fmt.Println(d, ok)

	h.Set("Retry-After-Ms", "250")
	d, ok = retry.RetryAfter(h, time.Now())
	fmt.Println(d, ok)
	// Output:
	// 2m0s true
	// 250ms true
}
