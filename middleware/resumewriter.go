package middleware

import (
	"bytes"
	"context"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/streamguard/streamguard/resume"
	"github.com/streamguard/streamguard/sse"
)

// storeBytes is how many bytes of events the resume writer gathers before
// it stores them without waiting for a Flush: a batch then fits one of the
// memory store's 16 KiB chunks, with room for one more event. sendBytes is
// how many it gathers before it sends them (stored first).
const (
	storeBytes = 8 << 10
	sendBytes  = 32 << 10
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
	resumabl bool           // a 2xx event stream: framed and stored
	wrote    bool           // the header is out
	pending  []byte         // the start of an event still incomplete
	scanned  int            // pending[:scanned] holds whole lines of it
	hasData  bool           // the incomplete event has a data line
	out      []byte         // whole events, ready to send once stored
	batch    []resume.Event // the events of out not yet stored
	batchLen int            // their bytes
	seq      uint64
	storeErr error // the store refused: the stream goes on unstored
	sendErr  error // the client is gone

	goneOnce sync.Once
	goneAt   time.Time
	done     chan struct{}
}

func newResumeWriter(w http.ResponseWriter, rc ResumeConfig, name string, ctx context.Context, cancel context.CancelCauseFunc) *resumeWriter {
	return &resumeWriter{w: w, rc: rc, name: name, ctx: ctx, sctx: context.WithoutCancel(ctx), cancel: cancel, done: make(chan struct{})}
}

func (w *resumeWriter) Header() http.Header { return w.w.Header() }

// Unwrap gives http.ResponseController the writer beneath.
func (w *resumeWriter) Unwrap() http.ResponseWriter { return w.w }

func (w *resumeWriter) WriteHeader(code int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.writeHeaderLocked(code)
}

func (w *resumeWriter) writeHeaderLocked(code int) {
	if w.wrote {
		return
	}
	w.wrote = true
	if code >= 200 && code <= 299 && sse.IsEventStream(w.w.Header().Get("Content-Type")) {
		w.resumabl = true
		w.w.Header().Set(sse.ResumableStreamHeader, w.name)
	}
	w.w.WriteHeader(code)
}

func (w *resumeWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.wrote {
		w.writeHeaderLocked(http.StatusOK)
	}
	if !w.resumabl {
		return w.w.Write(p)
	}
	if w.sendErr != nil && w.storeErr != nil {
		return 0, w.sendErr // nobody can get these bytes any more
	}
	w.pending = append(w.pending, p...)
	w.frame(false)
	return len(p), nil
}

func (w *resumeWriter) Flush() { _ = w.FlushError() }

// FlushError stores and sends the whole events written so far.
func (w *resumeWriter) FlushError() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.wrote {
		w.writeHeaderLocked(http.StatusOK)
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

// frame moves the whole events at the start of pending to out. At the end
// of the response (final), a CR at the end of pending ends its line.
func (w *resumeWriter) frame(final bool) {
	buf, start, line := w.pending, 0, w.scanned
	// Line ends are found by a vectorised search for LF while the bytes
	// hold no CR, as they mostly do.
	crFree := bytes.IndexByte(buf[line:], '\r') < 0
	for i := line; i < len(buf); {
		var k int
		if crFree {
			k = bytes.IndexByte(buf[i:], '\n')
		} else {
			k = bytes.IndexAny(buf[i:], "\r\n")
		}
		if k < 0 {
			break
		}
		i += k
		next := i + 1
		if buf[i] == '\r' {
			if next == len(buf) && !final {
				break // perhaps the first half of a CRLF
			}
			if next < len(buf) && buf[next] == '\n' {
				next++
			}
		}
		if i == line { // a blank line: the event is complete
			w.emit(buf[start:line], buf[line:next])
			start = next
		} else if isDataLine(buf[line:i]) {
			w.hasData = true
		}
		line, i = next, next
	}
	w.scanned = line - start
	w.pending = append(w.pending[:0], buf[start:]...)
}

// emit adds one whole event to out: its lines, its id when it has data, and
// the blank line that ends it.
func (w *resumeWriter) emit(lines, blank []byte) {
	if !w.hasData {
		w.out = append(append(w.out, lines...), blank...)
		w.hasData = false
		return
	}
	w.hasData = false
	if w.batchLen+len(lines)+len(blank) > storeBytes {
		w.store() // the batch is full
	}
	if len(w.out) >= sendBytes {
		w.sync()
	}
	w.seq++
	at := len(w.out)
	w.out = append(w.out, lines...)
	w.out = append(w.out, "id: "...)
	w.out = append(w.out, w.name...)
	w.out = append(w.out, '.')
	w.out = strconv.AppendUint(w.out, w.seq, 10)
	w.out = append(w.out, '\n')
	w.out = append(w.out, blank...)
	w.batch = append(w.batch, resume.Event{Seq: w.seq, Data: w.out[at:len(w.out):len(w.out)]})
	w.batchLen += len(w.out) - at
}

// isDataLine reports whether an SSE line is a data field.
func isDataLine(line []byte) bool {
	return len(line) >= 4 && string(line[:4]) == "data" && (len(line) == 4 || line[4] == ':')
}

// sync stores the events of out not yet stored, then sends out to the
// client.
func (w *resumeWriter) sync() {
	w.store()
	if len(w.out) > 0 && w.sendErr == nil {
		if _, err := w.w.Write(w.out); err != nil {
			w.lost(err)
		}
	}
	w.out = w.out[:0]
}

// store appends the batch to the store: one call.
func (w *resumeWriter) store() {
	if len(w.batch) > 0 && w.storeErr == nil {
		if err := w.rc.Store.Append(w.sctx, w.name, w.batch); err != nil {
			w.storeErr = err
		}
	}
	clear(w.batch)
	w.batch, w.batchLen = w.batch[:0], 0
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
	t := time.NewTicker(min(max(limit/4, 10*time.Millisecond), 5*time.Second))
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
		if err != nil || time.Since(since) > limit {
			w.cancel(errLinger)
			return
		}
	}
}

// finish stores and sends what is left when the handler returns, and ends
// the stream in the store.
func (w *resumeWriter) finish() {
	w.mu.Lock()
	if w.resumabl {
		w.frame(true)
		w.sync()
		if len(w.pending) > 0 && w.sendErr == nil {
			w.w.Write(w.pending) // an event the handler never ended: the client sees it cut
		}
	}
	w.mu.Unlock()
	close(w.done)
	ctx, cancel := context.WithTimeout(w.sctx, 5*time.Second)
	defer cancel()
	w.rc.Store.End(ctx, w.name)
}
