package middleware

import (
	"net/http"

	"github.com/streamguard/streamguard"
)

// finalErrors is the client layer that decides what a final error status
// (400 or more, once the retries beneath are spent) becomes: with
// Config.ErrorStatus, the *streamguard.Error RoundTrip returns; otherwise
// the response, its body conformed to the shape the SDKs parse
// (streamguard.Conform) unless Config.RawErrorBodies.
type finalErrors struct {
	next        http.RoundTripper
	errorStatus bool
	raw         bool
}

func newFinalErrors(next http.RoundTripper, cfg Config) http.RoundTripper {
	if !cfg.ErrorStatus && cfg.RawErrorBodies {
		return next // nothing to do: every response passes as it is
	}
	return &finalErrors{next: next, errorStatus: cfg.ErrorStatus, raw: cfg.RawErrorBodies}
}

// CloseIdleConnections closes the idle connections of the transport
// beneath.
func (f *finalErrors) CloseIdleConnections() {
	if c, ok := f.next.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

func (f *finalErrors) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := f.next.RoundTrip(req)
	if err != nil || resp.StatusCode < 400 {
		return resp, err
	}
	if f.errorStatus {
		err := streamguard.Check(resp)
		resp.Body.Close()
		return nil, err
	}
	streamguard.Conform(resp)
	return resp, nil
}
