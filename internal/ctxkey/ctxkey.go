// Package ctxkey carries per-attempt facts through a request's context between
// packages that must not import each other: the retry package records which
// attempt a request is, and the tracing package and the root package's Check
// read it back.
package ctxkey

import "context"

type attemptKey struct{}

// WithAttempt returns ctx marked as attempt n (1 for the first try).
func WithAttempt(ctx context.Context, n int) context.Context {
	return context.WithValue(ctx, attemptKey{}, n)
}

// Attempt returns the attempt number WithAttempt recorded in ctx, or 0 when
// none was (the request did not come through the retry package).
func Attempt(ctx context.Context) int {
	n, _ := ctx.Value(attemptKey{}).(int)
	return n
}
