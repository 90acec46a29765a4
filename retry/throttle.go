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

// The retry budget of [NewDefaultThrottle]: 20 tokens, 0.2 refunded per
// success.
//
// A success refunds the ratio and a retryable failure costs one token, so
// the bucket holds its level while failures/successes stays under the
// ratio: with 0.2, while fewer than 1 attempt in 6 (16.7 %) fails. A healthy
// service that fails a few percent of its requests keeps the bucket full,
// and every one of its failures is retried; so is a burst of up to 9
// failures before any success. gRPC's typical bucket, 10 tokens and 0.1,
// tolerates 1 failure in 11 (9 %) and stops retrying after 5 failures in a
// row; Envoy bounds the retries of each cluster by default with a retry
// budget of 20 % of the active requests (and at least 3 concurrent
// retries). The ratio takes Envoy's proportion; the tokens double gRPC's so
// that a burst needs twice as many failures to stop the retries.
//
// In a full outage the bucket, starting full, stops the retries once a
// failure leaves it at half or less: the failures that leave 19 to 11
// tokens are retried, 9 retries in all (maxTokens/2 - 1), however many
// requests run at once, and after that every request is sent once. So R
// requests against a gateway that answers only 503 make R + 9 attempts, at
// most 1.2 R from 45 requests on, where 5 R would be made without a budget.
// At any failure rate, each retry past those 9 must be paid for by refunds,
// so the retries stay under 10 + 0.2 x the successes: the attempts stay
// under 1.2 R + 10. Retries resume once successes have refilled the bucket
// to more than half plus one token: from empty, after 56 successes.
const (
	DefaultThrottleTokens = 20
	DefaultThrottleRatio  = 0.2
)

// NewDefaultThrottle returns a new, full Throttle of DefaultThrottleTokens
// tokens that refunds DefaultThrottleRatio per success. Share it between
// the requests of one client: the middleware package's client stack gives
// each client its own when its policy has none.
func NewDefaultThrottle() *Throttle {
	return NewThrottle(DefaultThrottleTokens, DefaultThrottleRatio)
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

// Spend takes a token for a retry this package's transport does not make
// itself, a stream's resume (sse.ResumeConfig.Budget), and reports whether
// it may go ahead: false while retries are throttled. A nil Throttle
// always allows.
func (t *Throttle) Spend() bool { return !t.fail() }

// Refund refunds the ratio for such a retry that succeeded, as for a
// success. A nil Throttle does nothing.
func (t *Throttle) Refund() { t.succeed() }

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
