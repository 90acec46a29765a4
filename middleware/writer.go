package middleware

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/streamguard/streamguard/sse"
)

// heartbeat is the SSE comment NewHandler writes on an idle stream, as an
// event of its own.
const heartbeat = ": keep-alive\n\n"

// The positions a response body can be at, for what may be appended to it.
const (
	atEventBoundary = iota // nothing written, or the last bytes ended an event
	atLineBoundary         // the last byte ended a line inside an event
	midLine
)

// writer is the ResponseWriter NewHandler gives the handler. Its writes are
// serialised with the budget's expiry and the heartbeat, which write from
// other goroutines; the handler gets a header map of its own (see
// writerheader.go), so that the 504 the budget writes never races with the
// handler's header changes. It keeps Flush, FlushError, Hijack, the
// deadlines, EnableFullDuplex and Unwrap, so that http.ResponseController
// works through it.
type writer struct {
	rw     http.ResponseWriter
	header http.Header
	cancel context.CancelCauseFunc // ends the handler's context
	out    record                  // every write to rw goes through it, under mu

	head bool // the request is a HEAD: no body

	mu      sync.Mutex
	wrote   bool  // the header is written
	ownBody bool  // the response is the writer's own JSON error: the handler's trailers are not its
	isSSE   bool  // a 2xx text/event-stream response that takes the writer's own bytes (ownBytesFit)
	lines   bool  // a 2xx JSON-lines response (sse.IsJSONLines) that takes them
	seq     bool  // and a JSON text sequence (sse.IsJSONSeq): a record may begin anywhere
	clen    int64 // the declared Content-Length, or -1
	pos     int   // atEventBoundary, atLineBoundary or midLine
	afterCR bool  // the last byte written was a CR, whose LF may come next
	// dropLF: the writer put bytes of its own after a CR that ended an
	// event, so the handler's next LF, the second half of that CRLF, must
	// not reach the client as a line end of its own.
	dropLF   bool
	ended    bool       // the response was ended for the handler, or it returned: further writes fail
	ending   bool       // end is writing the failure event through failWith
	done     bool       // ServeHTTP is returning: nothing may write any more
	dlMu     sync.Mutex // orders the deadlines with close, without mu
	closed   bool       // done, under dlMu
	abort    bool       // the response must be aborted once the handler returns
	hijacked bool
	err      error // the first write or flush error
	// failWith writes the failure event of a resumable stream through its
	// resume writer (set by Resumable), which gives it an id and stores
	// it: a client that resumes the stream gets it too.
	failWith func(error) bool
	settled  chan struct{} // closed when end's failWith returns

	heartbeat time.Duration
	hbTimer   *time.Timer
	lastWrite atomic.Int64 // unix nanoseconds

	// A resumable stream bounds its sends by a write deadline
	// (setSendDeadline); the heartbeat, a send too, renews it: boundSends.
	sendCtx   context.Context
	sendLimit time.Duration
	sendWdl   time.Time
}

// errEnded is what the handler's writes return once the response was ended
// by the budget, a failure event or an abort, or once ServeHTTP returned.
var errEnded = http.ErrHandlerTimeout

// Header returns the handler's own header map (see commitHeader), before
// and after the header is written: trailers set in it after the body, or in
// a map held from before, reach net/http when the handler returns.
func (w *writer) Header() http.Header { return w.header }

func (w *writer) WriteHeader(code int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.ended || w.wrote || w.hijacked {
		return
	}
	w.writeHeaderLocked(code)
}

// writeHeaderLocked commits the handler's header and starts the heartbeat
// of an event stream. A status net/http refuses panics here, as it does
// there, but before the writer's state changes: nothing was sent, and the
// Recoverer can still answer 500.
func (w *writer) writeHeaderLocked(code int) {
	if code < 100 || code > 999 {
		panic(fmt.Sprintf("invalid WriteHeader code %v", code))
	}
	dst := w.rw.Header()
	commitHeader(dst, w.header)
	if code >= 100 && code < 200 && code != http.StatusSwitchingProtocols {
		w.out.WriteHeader(code) // informational: the final header is still to come
		return
	}
	w.wrote = true
	framed := code >= 200 && code < 300 && ownBytesFit(dst, code, w.head)
	w.isSSE = framed && sse.IsEventStream(dst.Get("Content-Type"))
	w.lines = framed && sse.IsJSONLines(dst.Get("Content-Type"))
	w.seq = w.lines && sse.IsJSONSeq(dst.Get("Content-Type"))
	w.clen = declaredLength(dst)
	w.out.WriteHeader(code)
	w.lastWrite.Store(time.Now().UnixNano())
	if w.isSSE && w.heartbeat > 0 {
		w.hbTimer = time.AfterFunc(w.heartbeat, w.beat)
	}
}

func (w *writer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.ended {
		return 0, errEnded
	}
	if !w.wrote && !w.hijacked {
		w.writeHeaderLocked(http.StatusOK)
	}
	skip := 0
	if w.dropLF && len(p) > 0 {
		w.dropLF = false
		if p[0] == '\n' {
			skip = 1 // already ended by its CR, before the writer's own bytes
		}
	}
	n, err := w.out.Write(p[skip:])
	w.track(p[skip : skip+n])
	if err != nil {
		// Past a declared Content-Length, the handler's own mistake (HTTP/2
		// says so in an error of its own).
		if w.clen >= 0 && w.out.written+int64(len(p)-skip-n) > w.clen {
			err = http.ErrContentLength
		}
		w.failed(err)
	}
	return skip + n, err
}

// track follows where the body stands: at an event boundary, a line
// boundary, or inside a line. Line ends are the SSE spec's: CR, LF or CRLF,
// a CRLF counting once even when its two bytes come in separate writes.
func (w *writer) track(p []byte) {
	if len(p) == 0 {
		return
	}
	w.lastWrite.Store(time.Now().UnixNano())
	if w.lines {
		// A JSON line ends at its LF: a record may follow only there.
		w.pos = midLine
		if p[len(p)-1] == '\n' {
			w.pos = atEventBoundary
		}
		return
	}
	if !w.isSSE {
		return
	}
	if w.afterCR && p[0] == '\n' {
		p = p[1:] // the LF of a CRLF split between two writes
	}
	w.afterCR = false
	if len(p) == 0 {
		return
	}
	// Only the line ends after the last other byte matter.
	i := len(p)
	for i > 0 && (p[i-1] == '\n' || p[i-1] == '\r') {
		i--
	}
	if i > 0 {
		w.pos = midLine
	}
	for j := i; j < len(p); j++ {
		if p[j] == '\r' && j+1 < len(p) && p[j+1] == '\n' {
			continue // CRLF is one line end
		}
		if w.pos == midLine {
			w.pos = atLineBoundary
		} else {
			w.pos = atEventBoundary
		}
	}
	w.afterCR = p[len(p)-1] == '\r'
}

// failed records a write or flush error: the client went away, and the
// handler's work is canceled; unless the handler wrote past its
// Content-Length or into a response without a body, its own mistake.
func (w *writer) failed(err error) {
	if w.err == nil {
		w.err = err
		if !errors.Is(err, http.ErrContentLength) && !errors.Is(err, http.ErrBodyNotAllowed) {
			w.cancel(errClientClosed)
		}
	}
}

func (w *writer) Flush() { _ = w.FlushError() }

func (w *writer) FlushError() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.ended {
		return errEnded
	}
	if !w.wrote && !w.hijacked {
		w.writeHeaderLocked(http.StatusOK)
	}
	err := http.NewResponseController(w.rw).Flush()
	if err != nil && !isNotSupported(err) {
		w.failed(err)
	}
	return err
}

func (w *writer) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.done {
		return nil, nil, errEnded
	}
	conn, buf, err := http.NewResponseController(w.rw).Hijack()
	if err == nil {
		w.hijacked = true
		w.stopHeartbeat()
	}
	return conn, buf, err
}

// The deadlines and full duplex, as the rest, fail once ServeHTTP returns:
// net/http's HTTP/2 writer panics on them then, and its HTTP/1 one would
// set them on the connection's next request.

// They do not take mu, which a write holds while it blocks: a deadline
// set from another goroutine is what unblocks a write stuck on a client
// that stopped reading. dlMu orders them with close.

func (w *writer) SetReadDeadline(t time.Time) error {
	w.dlMu.Lock()
	defer w.dlMu.Unlock()
	if w.closed {
		return errEnded
	}
	return http.NewResponseController(w.rw).SetReadDeadline(t)
}

func (w *writer) SetWriteDeadline(t time.Time) error {
	w.dlMu.Lock()
	defer w.dlMu.Unlock()
	if w.closed {
		return errEnded
	}
	return http.NewResponseController(w.rw).SetWriteDeadline(t)
}

func (w *writer) EnableFullDuplex() error {
	w.dlMu.Lock()
	defer w.dlMu.Unlock()
	if w.closed {
		return errEnded
	}
	return http.NewResponseController(w.rw).EnableFullDuplex()
}

// Unwrap gives http.ResponseController the writer beneath.
func (w *writer) Unwrap() http.ResponseWriter { return w.rw }

// close is called as ServeHTTP returns: from then on nothing writes (a
// budget expiring at this moment included, and the handler's own
// goroutines). It reports whether the response must be aborted.
func (w *writer) close() (abort bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.done = true
	w.dlMu.Lock()
	w.closed = true
	w.dlMu.Unlock()
	// A goroutine the handler left behind gets errEnded: net/http's writer
	// is not the handler's any more (a Write panics on HTTP/2, and races
	// with the connection's next response on HTTP/1).
	w.ended = true
	w.stopHeartbeat()
	switch {
	case w.hijacked:
	case w.wrote && !w.ownBody:
		keepTrailers(w.rw.Header(), w.header)
	case w.wrote:
	default:
		// A handler that returns without writing gets net/http's implicit
		// 200, with the fields it set, as net/http sends them.
		commitHeader(w.rw.Header(), w.header)
	}
	return w.abort
}

// findWriter returns the writer NewHandler gave the handler, looking through
// any wrappers that Unwrap to it, or nil.
func findWriter(w http.ResponseWriter) *writer {
	mw, _ := findIn[*writer](w)
	return mw
}

// findIn returns the first T in the chain of wrappers from w.
func findIn[T http.ResponseWriter](w http.ResponseWriter) (T, bool) {
	for i := 0; i < 32 && w != nil; i++ {
		if mw, ok := w.(T); ok {
			return mw, true
		}
		u, ok := w.(interface{ Unwrap() http.ResponseWriter })
		if !ok {
			break
		}
		w = u.Unwrap()
	}
	var none T
	return none, false
}

// innermost returns the writer at the bottom of a chain of wrappers: the one
// net/http made, which http.MaxBytesReader needs to close the connection
// after a body over its limit.
func innermost(w http.ResponseWriter) http.ResponseWriter {
	for i := 0; i < 32; i++ {
		u, ok := w.(interface{ Unwrap() http.ResponseWriter })
		if !ok {
			return w
		}
		w = u.Unwrap()
	}
	return w
}
