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
