package middleware

import (
	"net/http"

	"github.com/streamguard/streamguard/sse"
)

// How the stream writer ends a response that failed: a JSON error, a
// failure event or record, or an abort.

// end ends the response for the handler because of err: before the header,
// a JSON error with status; after a 2xx event stream's header, at an event
// boundary, one failure event and a clean end; after a 2xx JSON-lines
// header, at a line boundary (json-seq's anywhere), one failure record and
// a clean end; after a whole response (no body, or all its declared
// length), nothing; otherwise the response is marked for abort. With
// beforeHeader, it does nothing once the header is written. It reports
// whether this call ended the response.
func (w *writer) end(status int, err error, beforeHeader bool) bool {
	return w.endAs(status, err, beforeHeader, false)
}

// endHandler is end for the handler's own goroutine (WriteError): a JSON
// error keeps the handler's header fields (errorHeader). The budget's end,
// on a goroutine of its own, cannot read them.
func (w *writer) endHandler(status int, err error) bool {
	return w.endAs(status, err, false, true)
}

func (w *writer) endAs(status int, err error, beforeHeader, handlerFields bool) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.ended || w.ending || w.done || w.hijacked || (beforeHeader && w.wrote) {
		return false
	}
	if fail := w.failWith; fail != nil && w.wrote && w.isSSE {
		// Not under mu: the resume writer writes through w (and holds
		// its own lock when it does).
		w.ending = true
		settled := make(chan struct{})
		w.settled = settled
		w.mu.Unlock()
		ok := fail(err)
		w.mu.Lock()
		w.ending = false
		close(settled)
		if ok || w.done {
			w.ended = true
			w.stopHeartbeat()
			return ok
		}
	}
	w.ended = true
	w.stopHeartbeat()
	switch {
	case !w.wrote:
		if handlerFields {
			errorHeader(w.rw.Header(), w.header)
		}
		writeJSON(&w.out, status, errorMessage(err))
		w.wrote, w.ownBody = true, true
	case w.isSSE && w.pos == atEventBoundary:
		if werr := sse.WriteFailureFrame(&w.out, err); werr == nil {
			http.NewResponseController(w.rw).Flush()
		}
	case w.lines && (w.pos == atEventBoundary || w.seq):
		if werr := sse.WriteFailureRecord(&w.out, w.rw.Header().Get("Content-Type"), err); werr == nil {
			http.NewResponseController(w.rw).Flush()
		}
	case w.head || w.out.status == http.StatusNoContent || w.out.status == http.StatusNotModified ||
		(w.clen >= 0 && w.out.written == w.clen):
		// The response is whole (it has no body, or all its declared
		// one): there is nothing to cut, and an abort would lose it.
	default:
		w.abort = true
	}
	return true
}

// seal ends the response once its handler has returned and its bytes are
// out: nothing may write or end it any more.
func (w *writer) seal() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.ended = true
	w.stopHeartbeat()
}

// onFailure sets how end writes a failure event after the header (see
// failWith).
func (w *writer) onFailure(fail func(error) bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.failWith = fail
}

// settle waits for a failure event that end is writing, on
// another goroutine (the budget's), to be out.
func (w *writer) settle() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for w.ending {
		settled := w.settled
		w.mu.Unlock()
		<-settled
		w.mu.Lock()
	}
}
