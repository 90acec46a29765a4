package ctxkey

import "context"

type headersKey struct{}

// WithHeadersArrived returns ctx carrying f, which a layer below the one
// that set it calls (HeadersArrived) as soon as its round trip has a
// response's headers, before it reads anything of the body: the retry
// layer's header timeout then stops, and an error body read below it (the
// tracing layer classifies one before it returns) is not cut short as if
// the headers had never come.
func WithHeadersArrived(ctx context.Context, f func()) context.Context {
	return context.WithValue(ctx, headersKey{}, f)
}

// HeadersArrived calls the function WithHeadersArrived put in ctx, if any.
func HeadersArrived(ctx context.Context) {
	if f, ok := ctx.Value(headersKey{}).(func()); ok {
		f()
	}
}

// Cause wraps the failure a layer ends an attempt's context with (the
// retry layer's header timeout), so that the layers below tell it from any
// other cause: a caller's errgroup cancels its context with a sibling's
// error, which is not this request's failure.
type Cause struct{ Err error }

func (c *Cause) Error() string { return c.Err.Error() }

// Unwrap returns the failure.
func (c *Cause) Unwrap() error { return c.Err }

// LayerFailure returns the failure a layer's Cause holds when err, a
// context's cause, is one; nil for any other cause (the caller's own).
func LayerFailure(err error) error {
	if c, ok := err.(*Cause); ok {
		return c.Err
	}
	return nil
}
