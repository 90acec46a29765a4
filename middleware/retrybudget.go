package middleware

import "github.com/streamguard/streamguard/retry"

// retryPolicy returns the retry policy of the client stack: cfg.Retry, with
// a retry budget of its own when cfg.Retry.Throttle is nil and
// cfg.NoRetryBudget is false.
//
// That budget is a new retry.NewDefaultThrottle() on every call, and
// NewTransport calls retryPolicy once, so each client (each NewTransport or
// NewClient) has its own, shared by all of its requests and by every host
// they reach; two clients never drain each other's. It is there against
// retry storms: without it, every request retries to its limit, so that 200
// concurrent requests against a gateway answering 503 to all of them make
// 1,000 attempts; with it, they make 209 (the 200 requests and 9 retries),
// and each later request is sent once until successes refill the bucket. A
// service that fails fewer than 1 attempt in 6 keeps the bucket full and
// sees every failure retried, as does a burst of up to 9 failures (see
// retry.DefaultThrottleTokens for the arithmetic). A caller who wants one
// budget across several clients, or other values, sets cfg.Retry.Throttle;
// one who wants every request to retry to its limit, whatever the others
// see, sets cfg.NoRetryBudget. retry.Policy.Throttle nil itself still means
// no throttle: the default is the client stack's, not the retry package's.
func retryPolicy(cfg Config) retry.Policy {
	p := cfg.Retry
	if p.Throttle == nil && !cfg.NoRetryBudget {
		p.Throttle = retry.NewDefaultThrottle()
	}
	return p
}
