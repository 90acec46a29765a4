package sse

import (
	"context"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/streamguard/streamguard"
	"github.com/streamguard/streamguard/internal/coding"
	"github.com/streamguard/streamguard/internal/streamstat"
)

// response body; Close and StreamStats may be called from any goroutine.
type body struct {
	rc       io.ReadCloser // replaced by a resume under rcMu; read by Close and the idle timer under it
	rcMu     sync.Mutex
	cfg      Config
	maxEvent int
	isSSE    bool
	lines    *lineParser // a JSON-lines body or a streamed JSON array (lines.go); nil otherwise
	ctx      context.Context
	req      *http.Request // for the secrets an in-band error may echo; may be nil
	status   int
	header   http.Header

	// The reading goroutine's state.
	buf      []byte // buf[r:ready] is deliverable; buf[ready:w] is an incomplete event
	r        int
	ready    int
	w        int
	p        parser
	upErr    error  // what the upstream returned with its last bytes, handled after them
	final    error  // returned by every Read once the stream is over
	frame    []byte // the failure frame still to deliver, or splice's LF
	endCR    bool   // the last byte delivered is a CR
	events   int64
	bytes    int64
	lastID   []byte
	head     [headBytes]byte // the body's first bytes, to name what a stream without events carried
	headN    int
	scratch  []byte
	inband   *streamguard.Error
	errEvent bool // the event or record being judged is an error: masked once judged (maskError)
	terminal bool
	dialect  int // 1 + index of the detected dialect; 0: none yet
	tooLarge bool
	fast     bool      // the built-in dialects, and a dialect detected or no longer searched for: plainEvent may skip the judge
	rs       *resuming // nil: no resumer follows the stream
	rsCancel context.CancelFunc

	// Shared with Close, the idle timer and StreamStats.
	closed   atomic.Bool
	stalled  atomic.Bool
	finished atomic.Bool
	// readSince is 1 + when the pending upstream Read began, in
	// nanoseconds since epoch, or 0 while no Read is pending: the only
	// clock read on the path of a Read.
	readSince    atomic.Int64
	statEvents   atomic.Int64
	statBytes    atomic.Int64
	statFirst    atomic.Int64 // unix nanoseconds of the first event; 0: none
	statTerminal atomic.Bool
	statDialect  atomic.Int32 // the dialect once the terminal event came; 0 before
	began        atomic.Bool  // a byte arrived: idleAfter applies, not idleFirst
	stallLimit   atomic.Int64 // the limit that stalled the stream, for its message
	timer        *time.Timer
	epoch        time.Time
	idleFirst    time.Duration // the stall limits in force (see startIdleTimer)
	idleAfter    time.Duration
	statMu       sync.Mutex // guards resumeLog and gen.info
	resumeLog    []streamstat.Resume
	gen          genState // the GenAI facts of a built-in dialect's stream (genai.go)
}

// Guard wraps resp.Body in place so that a failure of a 2xx response after
// its headers comes back from Read as a *streamguard.Error instead of a clean
// io.EOF or a bare transport error. It does nothing for a nil response, a
// status outside 2xx, a response without a body (except an event stream,
// which must carry events: its Read fails with no_events), or one already
// guarded.
//
// For a text/event-stream body the guard follows the event framing and hands
// out whole events only, holding back an incomplete event until its blank
// line arrives. When the body ends it returns exactly one verdict, in this
// order: an error event inside the stream (model_error, or the platform's
// reason by its code); the dialect's terminal event (success: io.EOF,
// whatever transport error follows); the idle timeout (stalled); the caller's
// cancellation or Close (canceled, source client); a transport failure such
// as io.ErrUnexpectedEOF, an HTTP/2 reset or a net error (truncated, source
// network); a clean end in the middle of an event, or at an event boundary of
// a known dialect without its terminal (truncated, source platform); an event
// over MaxEventBytes (event_too_large).
//
// A JSON-lines body (see IsJSONLines) is framed by record, one JSON text
// per line, and judged the same way: whole lines only, the same verdicts
// and idle timer; an Ollama stream (see Ollama) must end with its "done":
// true record, a line whose object starts with an "error" key is an error
// inside the stream, and a stream of no known dialect is judged by its
// transport and framing alone. At a clean end, a last line without its line
// end is a record when it is whole JSON, and truncated otherwise. A streamed
// JSON array (an application/json body of unknown length answering a path
// that names streamGenerateContent, as Gemini streams without alt=sse) is
// framed by element: whole elements only, an element whose object starts
// with "error" is an error inside the stream, and a body that ends without
// its closing ']' is truncated. JSON streams are never resumed.
//
// Any other body (a raw chunked application/octet-stream, as Truss streams
// are), and any body with a Content-Encoding (a request that asked for gzip
// itself, so net/http left the body compressed), is passed through read by
// read, and only transport failures are judged: a close-delimited HTTP/1
// body that ends early ends in a clean EOF and cannot be told from a
// complete one.
func Guard(resp *http.Response, cfg Config) {
	guard(resp, cfg, cfg.Resume.Transport)
}

// guard is Guard with rt, the transport that sends resumes (nil: none).
func guard(resp *http.Response, cfg Config, rt http.RoundTripper) {
	if resp == nil || resp.Body == nil || resp.StatusCode < 200 || resp.StatusCode > 299 {
		return
	}
	noBody := resp.Body == http.NoBody
	if noBody {
		// An event stream announced with no body at all (HTTP/1.1
		// Content-Length: 0, or HTTP/2 headers that end the stream) is a
		// stream without events, whatever its coding; any other empty
		// body is what it says.
		if !emptyEventStream(resp) {
			return
		}
		resp.Body = io.NopCloser(strings.NewReader(""))
	}
	if _, ok := resp.Body.(*body); ok {
		return
	}
	b := &body{rc: resp.Body, cfg: cfg, maxEvent: cfg.MaxEventBytes, status: resp.StatusCode, header: resp.Header, ctx: context.Background()}
	if b.maxEvent <= 0 {
		b.maxEvent = DefaultMaxEventBytes
	}
	if resp.Request != nil {
		b.ctx, b.req = resp.Request.Context(), resp.Request
	}
	switch {
	case coding.Encoded(resp.Header) && !noBody:
		// Compressed bytes (a caller that asked for gzip itself gets them
		// so): no line ends to frame by, only the transport to judge.
	case IsEventStream(resp.Header.Get("Content-Type")):
		b.isSSE = true
		b.p.owner = b
		b.gen.on = cfg.Dialects == nil
	default:
		if k := framingOf(resp); k != 0 {
			b.lines = &lineParser{kind: k, owner: b}
		}
	}
	b.startResume(resp, rt)
	b.startIdleTimer()
	resp.Body = b
}

// Read implements io.Reader. After the last byte it returns io.EOF for a
// stream judged complete, and the stream's *streamguard.Error otherwise.
func (b *body) Read(p []byte) (int, error) {
	for {
		if b.r < b.ready {
			n := copy(p, b.buf[b.r:b.ready])
			b.r += n
			b.delivered(p[:n])
			return n, nil
		}
		if len(b.frame) > 0 {
			n := copy(p, b.frame)
			b.frame = b.frame[n:]
			return n, nil
		}
		if b.final != nil {
			return 0, b.final
		}
		if b.upErr != nil {
			if b.rs == nil || !b.resume() {
				b.finish()
			}
			continue
		}
		if len(p) == 0 {
			return 0, nil
		}
		var n int
		if b.isSSE || b.lines != nil {
			n = b.fill(p)
		} else {
			n, b.upErr = b.upstreamRead(p)
		}
		if n > 0 {
			b.delivered(p[:n])
			return n, nil
		}
	}
}

// delivered counts d, bytes just handed to the consumer, and notes whether
// they end in a CR (see splice).
func (b *body) delivered(d []byte) {
	n := len(d)
	if n == 0 {
		return
	}
	b.endCR = d[n-1] == '\r'
	b.bytes += int64(n)
	b.statBytes.Store(b.bytes)
	b.statEvents.Store(b.events)
}

// fill reads from the upstream and parses what arrived. When the incomplete
// event held back is small next to p, it reads straight into p after a copy
// of that event and returns how many bytes of p are whole events, ready to
// deliver; otherwise it reads into the guard's own buffer and returns 0.
func (b *body) fill(p []byte) int {
	pending := b.w - b.ready
	if pending <= len(p)/2 && (b.rs == nil || !(b.rs.verify || b.rs.inCont)) {
		k := copy(p, b.buf[b.ready:b.w])
		b.r, b.ready, b.w = 0, 0, 0
		n, err := b.upstreamRead(p[k:])
		total := k + n
		c := b.parse(p[:total], err)
		if tail := total - c; tail-b.lead() > b.maxEvent {
			b.overflow()
		} else if tail > 0 {
			b.reserve(tail)
			b.w = copy(b.buf, p[c:total])
		}
		if b.upErr == nil {
			b.upErr = err
		}
		return c
	}
	if b.ready > 0 {
		b.w = copy(b.buf, b.buf[b.ready:b.w])
		b.r, b.ready = 0, 0
	}
	if b.w == len(b.buf) {
		b.reserve(b.w + 1)
		if b.w == len(b.buf) {
			b.overflow()
			return 0
		}
	}
	n, err := b.upstreamRead(b.buf[b.w:])
	b.w += n
	b.ready += b.parse(b.buf[b.ready:b.w], err)
	if b.rs != nil && b.rs.mismatch && b.upErr != ErrResumeMismatch {
		b.cutMismatch()
		return 0
	}
	if b.w-b.ready-b.lead() > b.maxEvent {
		b.overflow()
	}
	if b.upErr == nil {
		b.upErr = err
	}
	return 0
}

// parse frames win, the incomplete event or record and what arrived after
// it, by the body's framing, and returns how many of its bytes are whole.
func (b *body) parse(win []byte, err error) int {
	if b.lines != nil {
		return b.lines.parse(win, err)
	}
	n := b.p.parse(win, err != nil)
	if b.gen.on && b.dialect == dialectOpenAI && n > 0 {
		m := n
		if b.rs != nil && b.rs.mismatch { // in the buffer: nothing from the stray event on is delivered
			m = max(0, min(n, b.rs.cutAt-b.ready))
		}
		b.genTail(win[:m]) // once per read, never per event
	}
	return n
}

// reserve makes buf hold at least n bytes, growing by doubling from 1 KiB up
// to MaxEventBytes+1: an event that does not fit there is too large anyway.
func (b *body) reserve(n int) {
	if n <= len(b.buf) {
		return
	}
	size := max(1024, 2*len(b.buf))
	for size < n {
		size *= 2
	}
	if size-len(bom)-1 > b.maxEvent { // as a comparison: MaxEventBytes may be math.MaxInt
		size = b.maxEvent + 1 + len(bom) // a BOM may come ahead of the first event
	}
	nb := make([]byte, size)
	copy(nb, b.buf[:b.w])
	b.buf = nb
}

// overflow ends the stream: more than MaxEventBytes are held back, of an
// event complete and too large (the parser stops before one) or of one
// still incomplete, which is then too large once complete. (As many, with
// more to come, prove nothing: the next byte may end the stream, and an
// event cut there is truncated, not too large.)
func (b *body) overflow() {
	b.tooLarge = true
	b.upErr = ErrEventTooLarge
	b.closeUpstream()
}

// onEvent is called by the parser with each complete event's bytes.
func (b *body) onEvent(block []byte) {
	p := &b.p
	var id []byte
	if p.idSet {
		id = block[p.idS:p.idE]
	}
	if b.rs != nil && b.rs.mismatch {
		return // after a continuation that did not follow on: never delivered
	}
	if p.dataN == 0 { // comments, or fields without data: nothing is dispatched
		if b.rs != nil && !b.followID(block, id) {
			return
		}
		b.keepID(id)
		return
	}
	var typ []byte
	if p.typE > 0 {
		typ = block[p.typS:p.typE]
	}
	data := block[p.dataS:p.dataE]
	if p.dataN > 1 {
		data = b.joinData(block[p.bom:]) // the stream's BOM is no part of the first line's name
	}
	if b.rs != nil && !b.follow(block, typ, id, data) {
		return
	}
	b.keepID(id)
	b.events++
	if b.events == 1 {
		b.statFirst.Store(time.Now().UnixNano())
	}
	if b.cfg.Dialects == nil {
		b.judgeBuiltin(typ, data)
		b.fast = b.dialect != 0 || b.events >= detectEvents
		b.fast = b.fast && (b.rs == nil || b.rs.st == nil)
	} else {
		b.judge(typ, data)
	}
	if b.errEvent {
		b.maskError(block)
	}
}

// Close closes the upstream body. It is idempotent and safe to call while
// another goroutine is blocked in Read, which then returns the canceled
// verdict.
func (b *body) Close() error {
	if b.closed.Swap(true) {
		return nil
	}
	if b.timer != nil {
		b.timer.Stop()
	}
	if b.rsCancel != nil {
		b.rsCancel()
	}
	return b.closeUpstream()
}

// keepID keeps an event's id for Error.LastEventID; nil keeps the last.
func (b *body) keepID(id []byte) {
	if id != nil {
		b.lastID = append(b.lastID[:0], id[:min(len(id), maxIDBytes)]...)
	}
}

// StreamStats implements streamstat.Reporter.
func (b *body) StreamStats() streamstat.Stats {
	s := streamstat.Stats{
		Events:   b.statEvents.Load(),
		Bytes:    b.statBytes.Load(),
		Terminal: b.statTerminal.Load(),
	}
	if ns := b.statFirst.Load(); ns != 0 {
		s.FirstEvent = time.Unix(0, ns)
	}
	if b.finished.Load() {
		s.Dialect = b.dialectName(b.dialect)
	} else if d := b.statDialect.Load(); d > 0 {
		s.Dialect = b.dialectName(int(d)) // a caller that closes after the terminal event
	}
	b.statMu.Lock()
	if len(b.resumeLog) > 0 {
		s.Resumes = append([]streamstat.Resume(nil), b.resumeLog...)
	}
	s.GenAI = b.genStats()
	b.statMu.Unlock()
	return s
}
