package middleware

import (
	"bufio"
	"context"
	"errors"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/streamguard/streamguard"
	"github.com/streamguard/streamguard/resume"
	"github.com/streamguard/streamguard/sse"
)

// storeBytes is how many bytes of events the resume writer gathers before
// it stores them without waiting for a Flush: a batch then fits one of the
// memory store's 16 KiB chunks, with room for one more event. sendBytes is
// how many it gathers before it sends them (stored first).
const (
	storeBytes = 8 << 10
	sendBytes  = 64 << 10
)

// resumeWriter is the ResponseWriter of a resumable stream's handler. It
// frames the handler's bytes into events (CR, LF or CRLF line ends, as the
// SSE spec has them), gives each event with data the id "{name}.{seq}",
// appends the events to the store and then sends them, at each Flush (or
// every storeBytes and sendBytes): one store call per flush. Blocks without data
// (comments, retry:) are sent as they are and not stored. Bytes of an
// event not yet complete wait for its end. When the client has gone, the
// events are still stored: the handler's writes succeed while a resume may
// come.
type resumeWriter struct {
	w      http.ResponseWriter
	rc     ResumeConfig
	name   string
	ctx    context.Context // the handler's: canceled by the linger and the budget
	sctx   context.Context // the store's: the handler's values, never canceled
	cancel context.CancelCauseFunc

	mu       sync.Mutex
	resumabl bool // a 2xx event stream, not content-encoded: framed and stored
	wrote    bool // the header is out
	f        framing
	batch    []resume.Event // the events of f.out not yet stored
	batchLen int            // their bytes
	storeErr error          // the store refused: the stream goes on unstored
	storedTo uint64         // with storeErr: the last event surely stored (the Redis store may keep part of a refused Append)
	sendErr  error          // the client is gone
	failed   bool           // the failure event is written: nothing follows
	tooLarge bool           // frame met an event too large to store and send
	finished bool           // the handler returned
	complete bool           // it returned, not by a panic: returned
	whole    bool           // the handler passed on its upstream's whole stream (markWhole)
	short    bool           // the handler did not finish its stream: endShort
	// The writer's beat, once the stream is resumable: it takes no lock of
	// the writer's, so that a write blocked on a slow client never stops
	// it (the stream is alive, and a resume must not take it for lost).
	beat    atomic.Pointer[time.Timer]
	stored  atomic.Bool // events were stored since the last beat
	noBeats atomic.Bool // the handler returned, or the store refused

	created  time.Time // when the stream was created in the store
	wdl      time.Time // the write deadline of sends: sendDeadline
	goneOnce sync.Once
	goneAt   time.Time
	done     chan struct{}
}

func newResumeWriter(w http.ResponseWriter, rc ResumeConfig, name string, ctx context.Context, cancel context.CancelCauseFunc) *resumeWriter {
	rw := &resumeWriter{w: w, rc: rc, name: name, ctx: ctx, sctx: context.WithoutCancel(ctx), cancel: cancel, created: time.Now(), done: make(chan struct{})}
	rw.f.idLine = append(idPrefix(name), '\n')
	rw.f.prefixLen = len(rw.f.idLine) - 1
	return rw
}

func (w *resumeWriter) Header() http.Header { return w.w.Header() }

// Unwrap gives http.ResponseController the writer beneath.
func (w *resumeWriter) Unwrap() http.ResponseWriter { return w.w }

// Hijack hands the connection to the handler, as NewHandler's writer does,
// for the libraries that look for an http.Hijacker (a WebSocket upgrade):
// a response whose header was never written is no stream, and the store
// forgets it when the handler returns.
func (w *resumeWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, buf, err := http.NewResponseController(w.w).Hijack()
	if err != nil {
		return conn, buf, err
	}
	w.mu.Lock()
	stream := w.wrote
	if !stream {
		// No stream, then: its reservation is given back now (beaten
		// alive, a WebSocket held for hours kept a store slot).
		w.noBeats.Store(true)
		if t := w.beat.Load(); t != nil {
			t.Stop()
		}
	}
	w.mu.Unlock()
	if !stream {
		ctx, cancel := context.WithTimeout(w.sctx, 5*time.Second)
		defer cancel()
		w.rc.Store.Delete(ctx, w.name) // a failure leaves it to expire
	}
	return conn, buf, err
}

func (w *resumeWriter) WriteHeader(code int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.writeHeaderLocked(code)
}

func (w *resumeWriter) writeHeaderLocked(code int) {
	if w.wrote || w.finished {
		return // finished: a goroutine the handler left behind
	}
	if code >= 100 && code < 200 && code != http.StatusSwitchingProtocols {
		w.w.WriteHeader(code) // informational: the final header is still to come
		return
	}
	w.wrote = true
	h := w.w.Header()
	ow := findWriter(w.w)
	// Only a stream whose body can take the id lines: no declared length,
	// no content coding, not the answer to a HEAD (ownBytesFit).
	if code >= 200 && code <= 299 && sse.IsEventStream(h.Get("Content-Type")) && ownBytesFit(h, code, ow != nil && ow.head) {
		w.resumabl = true
		w.w.Header().Set(sse.ResumableStreamHeader, w.name)
		if ow != nil {
			ow.onFailure(w.fail)
			ow.boundSends(w.ctx, w.rc.linger())
		}
	}
	if !w.resumabl {
		w.noBeats.Store(true) // nothing to keep: the stream is deleted at the end
	}
	w.w.WriteHeader(code)
}

// startBeats starts the writer's beats (see heartbeat) at the stream's
// creation, not at its header: a handler slower than the store's MaxAge
// or TTL to answer (an upstream queued that long) keeps its stream.
func (w *resumeWriter) startBeats() {
	t := time.AfterFunc(time.Hour, w.heartbeat)
	w.beat.Store(t) // before it can fire: heartbeat resets it
	t.Reset(w.rc.beat())
}

func (w *resumeWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.finished {
		return 0, errEnded // a goroutine the handler left behind: nothing takes its bytes
	}
	if !w.wrote {
		w.writeHeaderLocked(http.StatusOK)
	}
	if !w.resumabl {
		return w.w.Write(p)
	}
	if w.sendErr != nil && w.storeErr != nil {
		return 0, w.sendErr // nobody can get these bytes any more
	}
	if w.failed {
		return 0, errEnded
	}
	w.frame(p, false)
	if w.tooLarge || !w.f.ending && len(w.f.out)-w.f.evAt > sse.DefaultMaxEventBytes {
		// An event incomplete past that size is too large once complete
		// (see frame), and would hold the writer's memory without bound
		// if it never ends; as the client's guard, the writer holds no
		// more. (An event ending, held for the LF after its CR, is whole
		// and was measured.)
		w.failLocked(errEventTooLarge)
		return 0, errEventTooLarge
	}
	return len(p), nil
}

// errEventTooLarge ends a resumable stream whose handler wrote an event
// larger than sse.DefaultMaxEventBytes as the client's guard counts it
// (sse.Config.MaxEventBytes: with its id line, the blank line that ends it
// as one byte), however the handler's writes split it. The events before
// it are stored and sent; it is not.
var errEventTooLarge = &streamguard.Error{Source: streamguard.SourceModel, Reason: streamguard.ReasonEventTooLarge,
	StatusCode: http.StatusBadGateway, Message: "an event of the stream was larger than 8 MiB"}

func (w *resumeWriter) Flush() { _ = w.FlushError() }

// FlushError stores and sends the whole events written so far.
func (w *resumeWriter) FlushError() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.finished {
		return errEnded
	}
	if !w.wrote {
		w.writeHeaderLocked(http.StatusOK)
	}
	if w.f.cr && w.f.ending {
		// An event ended by a lone CR, whose LF may still come: the
		// client dispatches it at the CR, so it goes now (an LF that
		// comes next goes as the end of an empty line).
		w.record()
	}
	w.sync()
	if w.sendErr != nil {
		if w.storeErr != nil {
			return w.sendErr
		}
		return nil
	}
	if err := http.NewResponseController(w.w).Flush(); err != nil {
		w.lost(err)
	}
	return nil
}

// sync stores the events of out not yet stored, then sends the whole
// events to the client and keeps the start of the next.
func (w *resumeWriter) sync() {
	w.store()
	f := &w.f
	if f.evAt > 0 && w.sendErr == nil {
		w.sendDeadline()
		if _, err := w.w.Write(f.out[:f.evAt]); err != nil {
			w.lost(err)
		}
	}
	if f.evAt > 0 {
		f.out = f.out[:copy(f.out, f.out[f.evAt:])]
		f.idAt -= f.evAt
		f.evAt = 0
	}
}

// sendDeadline bounds the sends to the client: one that stopped reading
// without closing (a half-open connection) blocks a write for a linger at
// most, and then counts as gone, so that the events go on being stored
// for a resume elsewhere. Called with mu held.
func (w *resumeWriter) sendDeadline() {
	setSendDeadline(w.w, w.ctx, &w.wdl, w.rc.linger())
}

// setSendDeadline sets the write deadline of a send to a stream's client
// (the writer's, or a resume's) at limit from now, never past the budget's
// own write deadline (ctx's deadline and writeGrace), once less than 3/4
// of limit is left of the last one, *wdl: a time read per send.
func setSendDeadline(w http.ResponseWriter, ctx context.Context, wdl *time.Time, limit time.Duration) {
	now := time.Now()
	if wdl.Sub(now) > limit*3/4 {
		return
	}
	*wdl = now.Add(limit)
	if dl, ok := ctx.Deadline(); ok && dl.Add(writeGrace).Before(*wdl) {
		*wdl = dl.Add(writeGrace)
	}
	_ = http.NewResponseController(w).SetWriteDeadline(*wdl)
}

// store appends the batch to the store: one call. When the store refuses
// it, the stream there ends short: a resume gets the events stored, then
// a failure event saying that the rest is lost, not a clean end.
func (w *resumeWriter) store() {
	if len(w.batch) > 0 && w.storeErr == nil {
		if err := w.rc.Store.Append(w.sctx, w.name, w.batch); err != nil {
			w.storeErr, w.storedTo = err, w.batch[0].Seq-1
			w.noBeats.Store(true)
			w.endStored(true)
		} else {
			w.stored.Store(true)
		}
	}
	clear(w.batch)
	w.batch, w.batchLen = w.batch[:0], 0
}

// fail ends the stream with the failure event of err (NewHandler's writer
// calls it for WriteError and the budget): the bytes of an event not yet
// complete are dropped (neither sent nor stored), and the failure event
// gets the next id and is stored, then sent, like any other; the
// handler's writes fail from then on. It reports whether the event was
// stored or sent, or is out already (the writer ended the stream itself:
// event_too_large), so that NewHandler's writer adds no second one.
func (w *resumeWriter) fail(err error) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.failLocked(err)
}

func (w *resumeWriter) failLocked(err error) bool {
	if !w.resumabl || w.finished {
		return false
	}
	if w.failed {
		return true
	}
	w.failed = true
	switch cause := context.Cause(w.ctx); {
	case errors.Is(cause, errStopped):
		err = errShutDown // the handler's failure is that of its canceled work
	case errors.Is(cause, errLinger):
		err = errLingered // so too
	}
	f := &w.f
	if f.ending { // a complete event, waiting to see if an LF follows its CR
		w.record()
	}
	f.out, f.carry, f.hasData, f.cr = f.out[:f.evAt], 0, false, false
	w.frame(sse.AppendFailureFrame(nil, err), true)
	w.sync()
	if w.sendErr == nil {
		if err := http.NewResponseController(w.w).Flush(); err != nil {
			w.lost(err)
		}
	}
	return w.sendErr == nil || w.storeErr == nil
}

// lost records that the client is gone. Called with mu held.
func (w *resumeWriter) lost(err error) {
	w.sendErr = err
	go w.gone()
}

// gone starts the linger: once no client has read the stream for
// rc.Linger, the handler's work is canceled.
func (w *resumeWriter) gone() {
	w.goneOnce.Do(func() {
		w.mu.Lock()
		w.goneAt = time.Now()
		w.mu.Unlock()
		go w.linger()
	})
}

func (w *resumeWriter) linger() {
	limit := w.rc.linger()
	t := time.NewTicker(w.rc.beat())
	defer t.Stop()
	for {
		select {
		case <-w.done:
			return
		case <-w.ctx.Done():
			return
		case <-t.C:
		}
		w.mu.Lock()
		since := w.goneAt
		w.mu.Unlock()
		ctx, cancel := context.WithTimeout(w.sctx, 5*time.Second)
		info, err := w.rc.Store.Info(ctx, w.name)
		cancel()
		if err == nil && info.Seen.After(since) {
			since = info.Seen
		}
		// A store that failed once says nothing of readers (with Redis,
		// one may be reading at another replica); one that lost the stream
		// says no resume can come.
		lost := errors.Is(err, resume.ErrNotFound) || errors.Is(err, resume.ErrExpired)
		if lost || time.Since(since) > limit {
			w.cancel(errLinger)
			return
		}
	}
}

// heartbeat is the writer's beat: when it stored nothing since the last
// one, it tells the store it is alive (an Append of no events), so that a
// resume waiting on a quiet stream does not take it for lost (see
// writerGone).
func (w *resumeWriter) heartbeat() {
	if w.noBeats.Load() {
		return
	}
	if !w.stored.Swap(false) {
		_ = w.rc.Store.Append(w.sctx, w.name, nil) // a failing store fails the next Append
	}
	if !w.noBeats.Load() {
		w.beat.Load().Reset(w.rc.beat())
	}
}
