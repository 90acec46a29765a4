package middleware

import (
	"net/http"

	"github.com/streamguard/streamguard"
)

// FinalErrors returns the layer that decides what a final error status (400
// or more, once the retries beneath it are spent) becomes: with
// cfg.ErrorStatus, the *streamguard.Error RoundTrip returns, the body
// closed; otherwise the response, its body conformed to the shape the SDKs
// parse (streamguard.Conform) unless cfg.RawErrorBodies. With
// RawErrorBodies and without ErrorStatus it is no layer at all.
func FinalErrors(cfg Config) Layer {
	return func(next http.RoundTripper) http.RoundTripper {
		if !cfg.ErrorStatus && cfg.RawErrorBodies {
			return next
		}
		return &finalErrors{layer{next}, cfg.ErrorStatus}
	}
}

type finalErrors struct {
	layer
	errorStatus bool
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
