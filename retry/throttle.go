package retry

import (
	"math"
	"sync/atomic"
)

// Throttle is a retry budget shared by many requests: the token bucket of
// gRPC's retry design (gRFC A6). It starts full, with maxTokens tokens. Each
// retryable failure (a retried status or connection failure, whether or not
// attempts remain) costs one token; each success (a response below 400 that
// is not retried) refunds tokenRatio, up to maxTokens. While the bucket
// holds half of maxTokens or less, no request is retried: the failure is
// returned at once. When a gateway is down, retries thus stop after about
// maxTokens/2 failures instead of multiplying the load by MaxAttempts, and
// resume once successes have refilled the bucket.
//
// Share one Throttle between the requests that reach the same servers,
// usually all requests of one transport. Token counts are kept in
// thousandths, as gRPC keeps them. A Throttle is safe for concurrent use.
type Throttle struct {
	max    int64 // in thousandths of a token
	ratio  int64 // in thousandths of a token
	tokens atomic.Int64
}

// maxThrottleTokens bounds maxTokens so that thousandths of a token fit an
// int64 with room to spare; gRPC itself caps maxTokens at 1000.
const maxThrottleTokens = 1e12

// NewThrottle returns a full Throttle of maxTokens tokens that refunds
// tokenRatio tokens per success. gRPC's typical values are 10 and 0.1: after
// 5 failures in a row retries stop, and 10 successes earn one retry back.
// tokenRatio is rounded to thousandths (at least one). NewThrottle panics if
// maxTokens or tokenRatio is not a positive finite number, or maxTokens is
// over 10^12.
func NewThrottle(maxTokens, tokenRatio float64) *Throttle {
	if !(maxTokens > 0 && maxTokens <= maxThrottleTokens) || !(tokenRatio > 0) || math.IsInf(tokenRatio, 1) {
		panic("retry: NewThrottle: maxTokens must be in (0, 1e12] and tokenRatio positive and finite")
	}
	t := &Throttle{
		max:   max(int64(math.Round(maxTokens*1000)), 1),
		ratio: max(int64(math.Round(min(tokenRatio, maxTokens)*1000)), 1),
	}
	t.tokens.Store(t.max)
	return t
}

// Tokens returns the tokens the bucket holds now.
func (t *Throttle) Tokens() float64 {
	return float64(t.tokens.Load()) / 1000
}

// fail takes a token for a retryable failure and reports whether retries
// are throttled: the bucket is at half or less after the take. A nil
// Throttle never throttles.
func (t *Throttle) fail() (throttled bool) {
	if t == nil {
		return false
	}
	for {
		cur := t.tokens.Load()
		next := max(cur-1000, 0)
		if t.tokens.CompareAndSwap(cur, next) {
			return 2*next <= t.max
		}
	}
}

// succeed refunds the ratio for a success. A nil Throttle does nothing.
func (t *Throttle) succeed() {
	if t == nil {
		return
	}
	for {
		cur := t.tokens.Load()
		if cur >= t.max {
			return
		}
		if t.tokens.CompareAndSwap(cur, min(cur+t.ratio, t.max)) {
			return
		}
	}
}
