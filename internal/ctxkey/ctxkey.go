// Package ctxkey carries per-attempt facts through a request's context between
// packages that must not import each other: the retry package records which
// attempt a request is and, for a retry, when the request's first attempt
// started; the tracing package and the root package's Check read them back.
package ctxkey

import (
	"context"
	"time"
)

type attemptKey struct{}

// retried is the value of a retry's context: its attempt number and the
// start of the request's first attempt, in one value so that each attempt
// adds a single layer to its context.
type retried struct {
	n     int
	start time.Time
}

// WithAttempt returns ctx marked as attempt n (1 for the first try).
func WithAttempt(ctx context.Context, n int) context.Context {
	return context.WithValue(ctx, attemptKey{}, n)
}

// WithAttemptStart returns ctx marked as attempt n of a request whose first
// attempt started at start, as one context value. For the first attempt
// (n <= 1), or a zero start, only n is kept, as WithAttempt keeps it: nothing
// has elapsed between attempts yet, and a request that is not retried then
// pays for no more than its attempt number.
func WithAttemptStart(ctx context.Context, n int, start time.Time) context.Context {
	if n <= 1 || start.IsZero() {
		return WithAttempt(ctx, n)
	}
	return context.WithValue(ctx, attemptKey{}, retried{n: n, start: start})
}

// Attempt returns the attempt number WithAttempt or WithAttemptStart
// recorded in ctx, or 0 when none was (the request did not come through the
// retry package).
func Attempt(ctx context.Context) int {
	switch v := ctx.Value(attemptKey{}).(type) {
	case int:
		return v
	case retried:
		return v.n
	}
	return 0
}

// Start returns the start of the request's first attempt as
// WithAttemptStart recorded it in the context of a retry (attempt 2 or
// later), or the zero time.
func Start(ctx context.Context) time.Time {
	v, _ := ctx.Value(attemptKey{}).(retried)
	return v.start
}

// Elapsed returns the time since the start of the request's first attempt
// when ctx is that of a retry (attempt 2 or later), and zero otherwise:
// the value of streamguard.Error.Elapsed for a failure classified now.
func Elapsed(ctx context.Context) time.Duration {
	v, ok := ctx.Value(attemptKey{}).(retried)
	if !ok {
		return 0
	}
	return max(time.Since(v.start), 0)
}
