package middleware

import (
	"context"
	"net/http"
	"time"
)

// The heartbeat of an event stream: a comment written when the stream has
// been idle, at an event boundary.

// beat writes a heartbeat comment, an event of its own, when the stream
// has been idle for the heartbeat period and stands at an event boundary
// (anywhere else it would land inside the handler's event), and re-arms
// itself.
func (w *writer) beat() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.ended || w.done || w.hijacked || w.hbTimer == nil {
		return
	}
	next := w.heartbeat
	idle := time.Duration(time.Now().UnixNano() - w.lastWrite.Load())
	if idle < w.heartbeat {
		next -= idle
	} else if w.pos == atEventBoundary {
		if w.sendLimit > 0 {
			setSendDeadline(w.rw, w.sendCtx, &w.sendWdl, w.sendLimit)
		}
		_, err := w.out.Write([]byte(heartbeat))
		if err == nil {
			err = http.NewResponseController(w.rw).Flush()
		}
		if err != nil {
			w.failed(err)
			return
		}
		w.dropLF = w.afterCR
		w.afterCR = false
		w.lastWrite.Store(time.Now().UnixNano())
	}
	w.hbTimer.Reset(next)
}

// setHeartbeat turns the heartbeat on, for a response whose header is
// still to be written.
func (w *writer) setHeartbeat(d time.Duration) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.heartbeat = d
}

func (w *writer) stopHeartbeat() {
	if w.hbTimer != nil {
		w.hbTimer.Stop()
		w.hbTimer = nil
	}
}

// boundSends makes the heartbeat set the write deadline that a resumable
// stream's sends set (setSendDeadline, limit from now): on a stream quiet
// for longer than limit, the deadline of the last send has passed, and the
// heartbeat would take a client that reads for gone.
func (w *writer) boundSends(ctx context.Context, limit time.Duration) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.sendCtx, w.sendLimit = ctx, limit
}
