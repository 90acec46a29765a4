package sse

import "net/http"

// NewTransport returns a RoundTripper that guards the body of every 2xx
// response base returns (see Guard), except responses to HEAD requests.
// The body of an error status (400 or more) is cut when a Read of it waits
// for Config.IdleTimeout (DefaultIdleTimeout when zero; never when
// negative), so that reading it to classify the error cannot hang; other
// statuses pass through unchanged. A broken stream is
// resumed through base (see Config.Resume). A nil base means
// http.DefaultTransport. The RoundTripper is safe for concurrent use.
func NewTransport(base http.RoundTripper, cfg Config) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	return &transport{base: base, cfg: cfg}
}

type transport struct {
	base http.RoundTripper
	cfg  Config
}

func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(req)
	if err != nil || req.Method == http.MethodHead {
		return resp, err
	}
	boundErrorBody(resp, t.cfg)
	rt := t.cfg.Resume.Transport
	if rt == nil {
		rt = t.base
	}
	guard(resp, t.cfg, rt)
	return resp, nil
}

// CloseIdleConnections closes the idle connections of the transport
// beneath, so that http.Client.CloseIdleConnections reaches it.
func (t *transport) CloseIdleConnections() {
	if c, ok := t.base.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}
