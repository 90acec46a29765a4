package middleware

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"time"

	"github.com/streamguard/streamguard"
	"github.com/streamguard/streamguard/resume"
	"github.com/streamguard/streamguard/sse"
)

// tailer writes the events of a stream to a resume's client: the stored
// ones after its id, then the live tail, then, if the resume fails, the
// failure event. mu orders its writes: the failure event (written from the
// budget's goroutine, or after run) comes after the last event written,
// and nothing after it. It has no id: it is the resume's, not one of the
// stream's events (the stream may go on, and its next event will have the
// next id), so that a client's last event id stays that of the last event
// it got, and a reconnect from it misses nothing.
type tailer struct {
	w      http.ResponseWriter
	rc     ResumeConfig
	ctx    context.Context // the resume's: its deadline bounds the sends
	name   string
	prefix []byte // idPrefix(name)
	after  uint64 // the resume's Last-Event-ID seq

	visited time.Time // run's: its last Read or Visit of the store

	mu     sync.Mutex
	failed bool      // the failure event is written: nothing follows
	wdl    time.Time // the write deadline of sends: setSendDeadline
}

// run writes the events of the stream after t.after, and the live tail,
// until the stream ends or the client leaves. Each Read is bounded, so that
// the store sees the reader at least every beat, and the reader sees
// whether the writer is still there.
func (t *tailer) run(ctx context.Context) error {
	rctl := http.NewResponseController(t.w)
	var buf []byte
	after := t.after
	for ctx.Err() == nil {
		rctx, cancel := context.WithTimeout(ctx, t.rc.beat())
		evs, ended, err := t.rc.Store.Read(rctx, t.name, after)
		cancel()
		t.visited = time.Now()
		switch {
		case ctx.Err() != nil:
			return nil // the client left, or the budget ended the resume
		case errors.Is(err, context.DeadlineExceeded): // a beat with nothing new
			if err := writerGone(ctx, t.rc, t.name); err != nil {
				return err
			}
			continue
		case errors.Is(err, resume.ErrNotFound), errors.Is(err, resume.ErrExpired):
			return forgotten(err)
		case err != nil:
			return err
		}
		if len(evs) > 0 {
			buf = buf[:0]
			for _, e := range evs {
				buf = appendStored(buf, t.prefix, e)
			}
			if !t.send(buf, rctl) {
				return nil
			}
			after = evs[len(evs)-1].Seq
		}
		if ended {
			return nil
		}
	}
	return nil
}

// send writes and flushes buf, unless the failure event is out, and
// reports whether the resume goes on. It sends in pieces of sendBytes at
// most, each bounded by a linger: a client that reads nothing for a linger
// is gone, as on the stream's first connection. Between pieces, once a
// beat has passed since its last visit, it tells the store that its
// reader is still there (Visit): a client slow to take a large batch
// keeps the stream's work going, which the writer would otherwise cancel
// for want of readers (a store that lost the stream is left to the next
// Read to report). mu is held throughout: a failure event never lands
// within an event.
func (t *tailer) send(buf []byte, rctl *http.ResponseController) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	for !t.failed {
		n := min(len(buf), sendBytes)
		t.deadline()
		if _, err := t.w.Write(buf[:n]); err != nil || rctl.Flush() != nil {
			return false
		}
		if buf = buf[n:]; len(buf) == 0 {
			return true
		}
		if time.Since(t.visited) >= t.rc.beat() {
			vctx, cancel := context.WithTimeout(t.ctx, t.rc.beat())
			_ = t.rc.Store.Visit(vctx, t.name)
			cancel()
			t.visited = time.Now()
		}
	}
	return false
}

// fail writes the failure event of err, without an id (NewHandler's
// writer calls it, through onFailure); it reports whether the event was
// sent.
func (t *tailer) fail(err error) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.failed {
		return false
	}
	t.failed = true
	t.deadline()
	_, werr := t.w.Write(sse.AppendFailureFrame(nil, err))
	return werr == nil && http.NewResponseController(t.w).Flush() == nil
}

// deadline bounds the next write to the client by a linger. Called with
// mu held.
func (t *tailer) deadline() {
	setSendDeadline(t.w, t.ctx, &t.wdl, t.rc.linger())
}

// finish bounds the end of the response (the server's last write) by a
// linger too: the deadline of the last send may have passed while the
// resume waited on a quiet stream, and would cut the end off.
func (t *tailer) finish() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.deadline()
}

// forgotten is the failure of a resume whose stream the store forgot while
// it was being sent (evicted for room, or expired): not a stream the
// resume did not find (its header is out), but one cut short.
func forgotten(err error) error {
	return &streamguard.Error{StatusCode: http.StatusBadGateway, Source: streamguard.SourcePlatform, Reason: streamguard.ReasonTruncated,
		Retryable: true, Err: err,
		Message: "the store forgot the stream while it was being resumed (evicted for room, or expired): the events after the last one sent are lost"}
}

// writerGone returns the failure of a stream that has not ended and
// whose writer has shown no sign of life for a linger: the process
// writing it went down (or its store refused its events and beats).
func writerGone(ctx context.Context, rc ResumeConfig, name string) error {
	info, err := rc.Store.Info(ctx, name)
	if err != nil || info.Ended || info.Written.IsZero() || time.Since(info.Written) <= rc.linger() {
		return nil // a store that failed fails the next Read
	}
	return &streamguard.Error{StatusCode: http.StatusBadGateway, Source: streamguard.SourcePlatform, Reason: streamguard.ReasonTruncated,
		Message: "the stream's writer has shown no sign of life for " + rc.linger().String() +
			" (no event stored, no beat): the server writing it went down before its end"}
}
