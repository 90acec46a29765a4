package middleware

import (
	"net/http"
	"time"
)

// record is what the stream writer sent to the client: the final status,
// the body bytes (the handler's, heartbeats and failure frames alike) and
// when the first of them went out. The writer writes through it, under its
// lock, so that the tracing layer reads what the client got from the
// writer itself (respwriter.Recorder), and a request needs one wrapper.
type record struct {
	rw      http.ResponseWriter
	status  int
	written int64
	first   time.Time
}

func (c *record) Header() http.Header { return c.rw.Header() }

func (c *record) WriteHeader(code int) {
	if c.status == 0 && (code >= 200 || code == http.StatusSwitchingProtocols) {
		c.status = code
	}
	c.rw.WriteHeader(code)
}

func (c *record) Write(p []byte) (int, error) {
	n, err := c.rw.Write(p)
	if n > 0 {
		if c.written == 0 {
			c.first = time.Now()
		}
		c.written += int64(n)
	}
	return n, err
}

// The respwriter.Recorder methods, for the tracing layer's span.

// Status returns the final status code sent, or 0.
func (w *writer) Status() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.out.status
}

// WroteHeader reports whether the final header was sent.
func (w *writer) WroteHeader() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.wrote
}

// Written returns how many body bytes the client was sent.
func (w *writer) Written() int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.out.written
}

// FirstWrite returns when the first body byte was sent, or the zero time.
func (w *writer) FirstWrite() time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.out.first
}

// Err returns the first write or flush error.
func (w *writer) Err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// Hijacked reports whether the handler took the connection over.
func (w *writer) Hijacked() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.hijacked
}

// Aborting reports whether the response is to be aborted when the handler
// returns: it failed after a header after which no failure frame could be
// written.
func (w *writer) Aborting() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.abort
}
