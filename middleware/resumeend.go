package middleware

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/streamguard/streamguard"
	"github.com/streamguard/streamguard/resume"
)

// The end of a resumable stream's writer: what happens when its handler
// returns.

// returned records that the handler returned (not by a panic), and that
// whatever ended its response is written: finish seals the response.
func (w *resumeWriter) returned() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.complete = true
}

// storeFailure returns the store's error, if it refused events of the
// stream, and the last event stored.
func (w *resumeWriter) storeFailure() (uint64, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.storedTo, w.storeErr
}

// finish stores and sends what is left when the handler returns, and ends
// the stream in the store, or deletes it there when the response was not
// an event stream (its name was never sent).
func (w *resumeWriter) finish() {
	w.mu.Lock()
	w.finished = true
	w.noBeats.Store(true)
	if t := w.beat.Load(); t != nil {
		t.Stop()
	}
	if w.resumabl && !w.failed {
		w.frame(nil, true)
		w.sync()
		if len(w.f.out) > 0 && w.sendErr == nil {
			w.w.Write(w.f.out) // an event the handler never ended: the client sees it cut
		}
	}
	if w.resumabl && w.sendErr == nil {
		// The end of the response (the server's last write) within a
		// linger: the deadline of the last send may have passed while the
		// stream was quiet, and would cut the end off.
		w.sendDeadline()
	}
	cut := w.storeErr != nil || (w.short && !w.failed)
	resumable, complete := w.resumabl, w.complete
	w.mu.Unlock()
	close(w.done)
	if ow := findWriter(w.w); ow != nil && complete {
		// The response is whole: a budget that expires while the store
		// ends the stream has nothing left to end (it would add a failure
		// after the end, or abort a whole JSON body).
		ow.seal()
	}
	if !resumable {
		ctx, cancel := context.WithTimeout(w.sctx, 5*time.Second)
		defer cancel()
		w.rc.Store.Delete(ctx, w.name)
		return
	}
	w.endStored(cut)
}

// endShort records that the handler did not finish its stream (it
// panicked, aborted, or its work was canceled by the linger): unless its
// failure event is stored, the stream ends short in the store.
func (w *resumeWriter) endShort() {
	w.mu.Lock()
	w.short = true
	w.mu.Unlock()
}

// endStored ends the stream in the store: complete, or short of its end
// (cut) when the store refused some of its events (then also at the
// refusal, so that resumes waiting on it learn at once) or the handler did
// not finish it.
//
// A store that fails for a moment (a Redis failover) gets two more tries,
// all within 5 s: a stream left without its end looks, to a resume, like
// one whose writer went down, and the resume would end with a failure
// although every event is stored.
func (w *resumeWriter) endStored(cut bool) {
	ctx, cancel := context.WithTimeout(w.sctx, 5*time.Second)
	defer cancel()
	end := w.rc.Store.End
	if cut {
		end = w.rc.Store.EndTruncated
	}
	for _, pause := range [...]time.Duration{0, 100 * time.Millisecond, 400 * time.Millisecond} {
		if pause > 0 {
			t := time.NewTimer(pause)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return
			}
		}
		err := end(ctx, w.name)
		if err == nil || errors.Is(err, resume.ErrNotFound) || errors.Is(err, resume.ErrExpired) || ctx.Err() != nil {
			return
		}
	}
}

// markWhole records that the handler behind w passed on its upstream's
// whole stream (Relay, at its clean end): a ResumeConfig.Stop that comes
// before it returns has nothing left to cut.
func markWhole(w http.ResponseWriter) {
	if rw, ok := findIn[*resumeWriter](w); ok {
		rw.mu.Lock()
		rw.whole = true
		rw.mu.Unlock()
	}
}

// stoppedShort reports whether ResumeConfig.Stop canceled the stream's
// work before it was whole.
func (w *resumeWriter) stoppedShort() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return !w.whole && errors.Is(context.Cause(w.ctx), errStopped)
}

// errStopped is the cause a resumable stream's work is canceled with when
// ResumeConfig.Stop is closed.
var errStopped = errors.New("middleware: the server stopped the stream's work (ResumeConfig.Stop)")

// errShutDown ends a stream whose work ResumeConfig.Stop canceled, for its
// client and for resumes.
var errShutDown = &streamguard.Error{Source: streamguard.SourcePlatform, Reason: streamguard.ReasonTruncated,
	StatusCode: http.StatusBadGateway, Retryable: true, Message: "the server shut down before the stream's end"}

// errShutDownEarly answers a request whose work ResumeConfig.Stop canceled
// before its response began: nothing was sent, so it is the platform's
// unavailability, to be retried at once (at another replica).
var errShutDownEarly = &streamguard.Error{Source: streamguard.SourcePlatform, Reason: streamguard.ReasonUnavailable,
	StatusCode: http.StatusServiceUnavailable, Retryable: true, Message: "the server shut down before the response began: retry"}

// stopped reports whether r's work was canceled by ResumeConfig.Stop.
func stopped(r *http.Request) bool {
	return r != nil && errors.Is(context.Cause(r.Context()), errStopped)
}

// endStopped ends a response whose work ResumeConfig.Stop canceled,
// whatever error the handler saw: before the header, 503 with Retry-After
// (errShutDownEarly); after it, the truncated failure (errShutDown). It
// returns the error it ended the response with.
func (w *writer) endStopped() error {
	w.mu.Lock()
	early := !w.wrote && !w.ended
	if early {
		w.rw.Header().Set("Retry-After", "1")
	}
	w.mu.Unlock()
	if early {
		w.end(http.StatusServiceUnavailable, errShutDownEarly, false)
		return errShutDownEarly
	}
	w.end(http.StatusBadGateway, errShutDown, false)
	return errShutDown
}

// watchStop cancels the handler's work (cause errStopped) when stop is
// closed before the handler returns.
func (w *resumeWriter) watchStop(stop <-chan struct{}) {
	if stop == nil {
		return
	}
	go func() {
		select {
		case <-stop:
			w.cancel(errStopped)
		case <-w.done:
		}
	}()
}
