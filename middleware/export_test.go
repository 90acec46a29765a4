package middleware

import (
	"net/http"
	"time"
)

// SSEWriterForTest is the writer NewHandler gives a handler, over rw, for a
// 200 text/event-stream response, with its heartbeat made due at once
// (Beat), its end after a failure (End, as WriteError and the budget end a
// response) and its close (Close: whether the response must be aborted):
// the fuzz target drives them at random points.
type SSEWriterForTest struct {
	http.ResponseWriter
	w *writer
}

func NewSSEWriterForTest(rw http.ResponseWriter) *SSEWriterForTest {
	w := &writer{rw: rw, out: record{rw: rw}, header: make(http.Header), cancel: func(error) {}, heartbeat: time.Hour, clen: -1}
	w.Header().Set("Content-Type", "text/event-stream")
	w.WriteHeader(http.StatusOK)
	return &SSEWriterForTest{w, w}
}

func (t *SSEWriterForTest) Beat() {
	t.w.lastWrite.Store(0) // idle for ever: the heartbeat is due
	t.w.beat()
}

func (t *SSEWriterForTest) End(err error) { t.w.end(http.StatusInternalServerError, err, false) }

func (t *SSEWriterForTest) Close() (abort bool) { return t.w.close() }
