// Package ctxcause tells whose a request context's cause is: the stack's
// own (its budget, a layer's failure) or the caller's. net/http returns the
// cause (HTTP/1) or the context's bare error (HTTP/2) as a request's error,
// and a caller's cause may be any error, a *streamguard.Error too
// (errgroup.WithContext cancels with a sibling's failure): that is the
// caller's cancellation, never this request's failure.
package ctxcause

import (
	"context"

	"github.com/streamguard/streamguard"
	"github.com/streamguard/streamguard/internal/ctxkey"
)

// Callers reports whether cause, a context's, is of the caller's own
// making: not the bare streamguard.ErrBudgetExceeded the stack's budget
// sets (one that wraps it is a caller's), not a layer's (ctxkey.Cause),
// and not the bare error of a context canceled without a cause.
func Callers(cause error) bool {
	return cause != nil && cause != streamguard.ErrBudgetExceeded && ctxkey.LayerFailure(cause) == nil &&
		cause != context.Canceled && cause != context.DeadlineExceeded
}
