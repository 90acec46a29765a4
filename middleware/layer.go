package middleware

import (
	"net/http"

	"github.com/streamguard/streamguard/internal/redact"
)

// Layer is one client layer: it wraps the RoundTripper beneath it. Chain
// composes layers; NewTransport is the chain of the layers below, and each
// of them can be used alone.
type Layer = func(http.RoundTripper) http.RoundTripper

// layer is what every client layer of this package embeds: the transport
// beneath, and CloseIdleConnections passed on to it, so that
// http.Client.CloseIdleConnections reaches the base pool through the stack.
type layer struct{ next http.RoundTripper }

func (l layer) CloseIdleConnections() {
	if c, ok := l.next.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

// Credentials returns the layer that marks the names in
// cfg.CredentialHeaders as credential headers for everything beneath it:
// their values are scrubbed from errors and spans like Authorization's.
// With no names it is no layer at all. Put it outermost.
func Credentials(cfg Config) Layer {
	return func(next http.RoundTripper) http.RoundTripper {
		if len(cfg.CredentialHeaders) == 0 {
			return next
		}
		return &credentials{layer{next}, cfg.CredentialHeaders}
	}
}

type credentials struct {
	layer
	names []string
}

func (c *credentials) RoundTrip(req *http.Request) (*http.Response, error) {
	return c.next.RoundTrip(req.WithContext(redact.WithHeaders(req.Context(), c.names)))
}
