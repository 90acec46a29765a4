// Package respwriter wraps an http.ResponseWriter to record what a handler did
// with it (the status code, the body bytes written, whether the header went
// out, the first write or flush error, whether the connection was hijacked)
// without hiding anything the writer beneath can do.
//
// A wrapper that hides the optional interfaces breaks streaming: a handler
// behind it can no longer flush an SSE event, set a deadline for a long
// generation, or hijack the connection. [Writer] keeps them all, in
// [http.ResponseController] semantics: Flush, FlushError (returning the real
// error, which chi's wrapper and otelhttp's drop), Hijack, SetReadDeadline,
// SetWriteDeadline and EnableFullDuplex, each forwarded through any chain of
// Unwrap methods beneath it and answering an error that wraps
// [http.ErrNotSupported] when nothing beneath supports it; and Unwrap, so that
// a ResponseController built on a wrapper of the Writer reaches the
// connection.
//
// The tracing package uses it to put the status code and the response's
// failure on the server span.
//
// Writer deliberately does not implement io.ReaderFrom: the fast path of
// net/http's writer mixes the source's read errors with the connection's write
// errors, and Err must hold only the latter. Copies go through Write instead.
package respwriter

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"time"
)

// Recorder is what the tracing layer reads of a response: Writer records
// it, and a writer of the middleware package that serialises a stream's
// writes records it too, so that a request needs one wrapper, not two.
// Aborting reports a response its writer will abort once the handler
// returns (Writer never does).
type Recorder interface {
	http.ResponseWriter
	Status() int
	WroteHeader() bool
	Written() int64
	FirstWrite() time.Time
	Err() error
	Hijacked() bool
	Aborting() bool
}

// Writer is an http.ResponseWriter that records what went through it. Create
// one with New; the zero value is not usable.
//
// Like the ResponseWriter it wraps, a Writer's writing methods must not be
// called concurrently. Its recording accessors (Status, WroteHeader, Written,
// FirstWrite, Err, Hijacked) may be called from any goroutine at any time,
// including while the handler writes and after it returned.
type Writer struct {
	rw http.ResponseWriter

	status      atomic.Int32
	wroteHeader atomic.Bool
	hijacked    atomic.Bool
	written     atomic.Int64
	firstWrite  atomic.Int64 // unix nanoseconds; 0 until the first byte is written
	err         atomic.Pointer[error]
}

// New returns a Writer that forwards to w and records what goes through it.
func New(w http.ResponseWriter) *Writer {
	return &Writer{rw: w}
}

// Status returns the final status code written, explicitly or implicitly
// (200 on a first Write or Flush), or 0 when the header has not been written.
func (w *Writer) Status() int { return int(w.status.Load()) }

// WroteHeader reports whether the final header has been written (sent, or
// committed to be sent with the first flush of the body).
func (w *Writer) WroteHeader() bool { return w.wroteHeader.Load() }

// Written returns how many body bytes the writer beneath accepted.
func (w *Writer) Written() int64 { return w.written.Load() }

// FirstWrite returns when the first body byte was written, or the zero time.
func (w *Writer) FirstWrite() time.Time {
	if ns := w.firstWrite.Load(); ns != 0 {
		return time.Unix(0, ns)
	}
	return time.Time{}
}

// Err returns the first error a Write, WriteString or flush returned, or nil.
// On a server connection such an error almost always means the client went
// away. An error wrapping [http.ErrNotSupported] from a flush is not
// recorded: the writer cannot flush, nothing failed.
func (w *Writer) Err() error {
	if p := w.err.Load(); p != nil {
		return *p
	}
	return nil
}

// Aborting reports false: a Writer never aborts a response of its own.
func (w *Writer) Aborting() bool { return false }

// Hijacked reports whether the connection was taken over through Hijack.
func (w *Writer) Hijacked() bool { return w.hijacked.Load() }

// Unwrap returns the ResponseWriter beneath, for http.ResponseController.
func (w *Writer) Unwrap() http.ResponseWriter { return w.rw }

// Header returns the header map of the writer beneath.
func (w *Writer) Header() http.Header { return w.rw.Header() }

// WriteHeader records code and forwards it. A 1xx code other than 101 is an
// informational response and is forwarded without being recorded; a second
// final code is forwarded (net/http logs it as superfluous) and not recorded.
func (w *Writer) WriteHeader(code int) {
	if w.hijacked.Load() || w.wroteHeader.Load() || (code >= 100 && code < 200 && code != http.StatusSwitchingProtocols) {
		w.rw.WriteHeader(code)
		return
	}
	w.rw.WriteHeader(code)
	w.status.Store(int32(code))
	w.wroteHeader.Store(true)
}

// Write writes p to the body, with an implicit WriteHeader(200) first when
// the header has not been written, and records the bytes and the error.
func (w *Writer) Write(p []byte) (int, error) {
	if !w.wroteHeader.Load() && !w.hijacked.Load() {
		w.WriteHeader(http.StatusOK)
	}
	n, err := w.rw.Write(p)
	w.wrote(n, err)
	return n, err
}

// WriteString is Write for a string, without a copy when the writer beneath
// implements io.StringWriter (net/http's does).
func (w *Writer) WriteString(s string) (int, error) {
	sw, ok := w.rw.(io.StringWriter)
	if !ok {
		return w.Write([]byte(s))
	}
	if !w.wroteHeader.Load() && !w.hijacked.Load() {
		w.WriteHeader(http.StatusOK)
	}
	n, err := sw.WriteString(s)
	w.wrote(n, err)
	return n, err
}

func (w *Writer) wrote(n int, err error) {
	if n > 0 {
		if w.written.Add(int64(n)) == int64(n) {
			w.firstWrite.CompareAndSwap(0, time.Now().UnixNano())
		}
	}
	if err != nil {
		w.fail(err)
	}
}

// fail records err when it is the first error.
func (w *Writer) fail(err error) {
	if w.err.Load() == nil {
		w.err.CompareAndSwap(nil, &err)
	}
}

// Flush implements http.Flusher. It drops the error, as that interface
// requires; FlushError returns it, and Err keeps it.
func (w *Writer) Flush() { _ = w.FlushError() }

// FlushError flushes buffered data to the client and returns the real error
// of the writer beneath (a broken connection, an HTTP/2 stream the client
// reset), or an error wrapping http.ErrNotSupported when nothing beneath can
// flush. A flush before any write commits the header with 200, as net/http
// does.
func (w *Writer) FlushError() error {
	target := flushTarget(w.rw)
	if target == nil {
		return http.ErrNotSupported
	}
	if !w.wroteHeader.Load() && !w.hijacked.Load() {
		w.WriteHeader(http.StatusOK)
	}
	var err error
	if f, ok := target.(interface{ FlushError() error }); ok {
		err = f.FlushError()
	} else {
		target.(http.Flusher).Flush()
	}
	if err != nil {
		w.fail(err)
	}
	return err
}

// flushTarget finds the writer that flushes beneath rw as
// http.ResponseController does: at each level FlushError first, then Flush,
// then Unwrap. It returns nil when nothing beneath can flush.
func flushTarget(rw http.ResponseWriter) http.ResponseWriter {
	for {
		switch t := rw.(type) {
		case interface{ FlushError() error }, http.Flusher:
			return rw
		case interface{ Unwrap() http.ResponseWriter }:
			rw = t.Unwrap()
		default:
			return nil
		}
	}
}

// Hijack takes over the connection (HTTP/1 only; HTTP/2 answers an error
// wrapping http.ErrNotSupported). After it, the Writer records nothing more.
func (w *Writer) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, buf, err := http.NewResponseController(w.rw).Hijack()
	if err == nil {
		w.hijacked.Store(true)
	}
	return conn, buf, err
}

// SetReadDeadline sets the deadline for reading the request body.
func (w *Writer) SetReadDeadline(deadline time.Time) error {
	return http.NewResponseController(w.rw).SetReadDeadline(deadline)
}

// SetWriteDeadline sets the deadline for writing the response: a long
// generation must extend the server's WriteTimeout this way.
func (w *Writer) SetWriteDeadline(deadline time.Time) error {
	return http.NewResponseController(w.rw).SetWriteDeadline(deadline)
}

// EnableFullDuplex lets an HTTP/1 handler keep reading the request body
// after it has started writing the response.
func (w *Writer) EnableFullDuplex() error {
	return http.NewResponseController(w.rw).EnableFullDuplex()
}
