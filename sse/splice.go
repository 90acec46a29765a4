package sse

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/streamguard/streamguard"
	"github.com/streamguard/streamguard/internal/redact"
	"github.com/streamguard/streamguard/internal/streamstat"
)

// resuming is the guard's side of resuming one stream: nil on a stream no
// Resumer follows, so that such a stream pays one nil check per read. Only
// the reading goroutine touches it.
type resuming struct {
	st       ResumeState
	name     string
	rt       http.RoundTripper
	ctx      context.Context // the request's context, canceled by Close
	bo       backoff.BackOff // made when the first wait without retry: is due
	retry    time.Duration   // the stream's retry: field; 0: none
	n        int             // resumes tried
	bytesAt  int64           // the bytes delivered when the last was sent
	verify   bool            // the next event is the first of a continuation
	later    laterChecker    // st, when it checks a continuation's later events too
	ids      bool            // st follows ids without data too (idFollower)
	inCont   bool            // in a continuation that later checks: the guard's buffer, see fill
	mismatch bool            // it was not the one after the last delivered
	cutAt    int             // where in buf that event started
	orig     *streamguard.Error
	err      error                   // why the last resume failed, for the final error
	release  context.CancelCauseFunc // ends the context of the continuation in use
}

// startResume lets the configured resumers look at the stream; the first
// that follows it makes the stream resumable.
func (b *body) startResume(resp *http.Response, rt http.RoundTripper) {
	if !b.isSSE {
		return
	}
	st, name := b.cfg.Resume.begin(resp, rt)
	if st == nil {
		return
	}
	ctx, cancel := context.WithCancel(b.ctx)
	later, _ := st.(laterChecker)
	_, ids := st.(idFollower)
	b.rs = &resuming{st: st, name: name, rt: rt, ctx: ctx, later: later, ids: ids}
	b.rsCancel = cancel
	b.p.follow = true // see splice
}

// laterChecker is a ResumeState that checks the later events of a
// continuation too, not only its first (Continues): later reports whether
// an event after the first is the one after the last delivered, so that a
// duplicate, a gap or a restart further on is a mismatch too.
type laterChecker interface {
	later(typ, id, data []byte) bool
}

// idFollower is a ResumeState that follows the ids of blocks without
// data too: no event is dispatched for such a block, but the SSE standard
// moves a client's last event id with it, and a server resumes from there.
type idFollower interface{ followsIDOnly() }

// followID shows a block with an id and no data to an idFollower, as an
// event without data (follow); it returns false when the block must not
// be passed on.
func (b *body) followID(block, id []byte) bool {
	if id == nil || !b.rs.ids {
		return true
	}
	return b.follow(block, nil, id, nil)
}

// follow shows a complete event to the stream's resumer: the first event of
// a continuation to Continues, its later ones to a laterChecker's later,
// then every event to Event. It returns false when the event must not be
// delivered: the continuation does not follow on.
func (b *body) follow(block, typ, id, data []byte) bool {
	r := b.rs
	if r.st == nil {
		return true
	}
	if r.verify {
		if !r.st.Continues(typ, id, data) {
			return b.mismatchAt(block)
		}
		// An error event without an id (the server's failure of the
		// resume, not one of the stream's events) says nothing of where
		// the continuation stands: an event after it is checked too.
		r.verify = len(id) == 0 && string(typ) == "error"
	} else if r.inCont && !r.later.later(typ, id, data) {
		return b.mismatchAt(block)
	}
	if !r.st.Event(typ, id, data) {
		r.st, r.inCont = nil, false // not resumable after all: the events cost nothing more
		b.p.follow = false
	}
	return true
}

// mismatchAt marks the continuation's event block, which does not follow
// on, as where the stream ends (see cutMismatch), and returns false.
func (b *body) mismatchAt(block []byte) bool {
	r := b.rs
	r.verify, r.inCont = false, false
	r.mismatch = true
	r.cutAt = cap(b.buf) - cap(block) // block is part of buf: see fill
	return false
}

// setRetry records a retry: field's value, in milliseconds.
func (r *resuming) setRetry(v []byte) {
	if ms, ok := parseSeq(v); ok {
		r.retry = time.Duration(min(ms, 1<<30)) * time.Millisecond
	}
}

// resume tries to continue the stream after its upstream failed. It returns
// true when a continuation now feeds the body, false when the stream ends
// with its verdict. A resume request that got no response (the network
// failed again) is tried again while resumes remain; one answered with an
// error status ends the stream. A stream that ended with a failure event
// is not resumed: its server gave up on it.
func (b *body) resume() bool {
	r := b.rs
	v := b.verdict()
	if r.st == nil || r.mismatch || b.inband != nil || v == nil ||
		(v.Reason != streamguard.ReasonTruncated && v.Reason != streamguard.ReasonStalled) {
		return false
	}
	b.closeUpstream()
	for r.n < b.cfg.Resume.maxResumes() {
		resp, again := b.resumeOnce(v)
		if resp != nil {
			b.splice(resp.Body, v)
			return true
		}
		if !again {
			return false
		}
	}
	return false
}

// splice makes rc, a continuation's body, the stream's upstream, in place of
// the one that failed with v.
func (b *body) splice(rc io.ReadCloser, v *streamguard.Error) {
	b.rcMu.Lock()
	b.rc = &dropBOM{ReadCloser: rc}
	closed := b.closed.Load()
	b.rcMu.Unlock()
	if closed {
		rc.Close() // Close came between: the next read sees it
	}
	// A followed stream's lines end where its consumer's parser ends them:
	// a lone CR amid LF lines ("id: 2\rdata: x") must not hide an event,
	// or its id, from the resumer (see parser.follow). Its BOM is dropped
	// before the parser (dropBOM).
	b.p = parser{owner: b, follow: true, bomDone: true}
	if b.endCR && len(b.frame) == 0 {
		// The cut came between a CR and its LF: a consumer that splits
		// lines at LF only (bufio.Scanner, openai-go, anthropic-sdk-go)
		// would read the CR and the continuation's first line as one,
		// and never see the blank line that ended the last event. The
		// LF goes first; to a parser of the spec, CRLF is one line end.
		b.frame, b.endCR = lf, false
		b.bytes++ // delivered before anything else
		b.statBytes.Store(b.bytes)
	}
	b.rs.bytesAt = b.bytes // the LF above is not the continuation going on
	b.r, b.ready, b.w = 0, 0, 0
	b.upErr = nil
	b.stalled.Store(false)
	b.rs.verify, b.rs.orig = true, v
	// The rest of the continuation is checked too, where the state can
	// (laterChecker): its events then take the guard's buffer (fill), so
	// that one that does not follow on is cut before it is delivered.
	b.rs.inCont = b.rs.later != nil
	if b.timer != nil {
		b.timer.Reset(b.idleAfter)
	}
}

// lf is the line end splice sends after a CR that its cut parted from it.
var lf = []byte{'\n'}

// closeUpstream closes the current upstream body; safe from any goroutine.
func (b *body) closeUpstream() error {
	b.rcMu.Lock()
	rc := b.rc
	b.rcMu.Unlock()
	return rc.Close()
}

// cutMismatch ends the stream before the continuation's first event, which
// does not follow on from the last delivered.
func (b *body) cutMismatch() {
	b.ready, b.w = b.rs.cutAt, b.rs.cutAt
	b.upErr = ErrResumeMismatch
	b.closeUpstream()
}

// mismatchVerdict is the failure of a stream whose continuation did not
// follow on; the failure the resume repaired stays reachable as its cause.
func (b *body) mismatchVerdict() *streamguard.Error {
	after := "the last event delivered" // a protocol that numbers its events in their data (Responses)
	if len(b.lastID) > 0 {
		after = "event id " + strconv.Quote(streamguard.Sanitize(string(b.lastID), 64))
	}
	return b.fail(streamguard.SourcePlatform, streamguard.ReasonResumeMismatch, errors.Join(ErrResumeMismatch, b.rs.orig),
		"resume "+strconv.Itoa(b.rs.n)+" ("+b.rs.name+") did not continue right after "+after)
}

// annotateResume adds what the resumes did to the stream's failure: how
// many were tried, and why the last one failed.
func (b *body) annotateResume(v *streamguard.Error) {
	r := b.rs
	v.Resumes = r.n
	if r.err == nil {
		return
	}
	what := "no resume was possible: "
	switch {
	case r.n > 0 && (r.err == errNoBudget || r.err == errBackoffStop || r.err == errBudgetSpent):
		what = "no resume after " + strconv.Itoa(r.n) + ": "
	case r.n > 0:
		what = "resume " + strconv.Itoa(r.n) + " (" + r.name + ") failed: "
	}
	v.Message += "; " + what + b.resumeText(r.err)
	v.Err = errors.Join(v.Err, r.err)
}

// resumeText is a resume error's text, on one line, without the request's
// secrets or any key shape.
func (b *body) resumeText(err error) string {
	text := err.Error()
	var e *streamguard.Error
	if errors.As(err, &e) {
		text = strconv.Itoa(e.StatusCode) + " " + string(e.Source) + " " + string(e.Reason)
		if e.Message != "" {
			text += ": " + e.Message
		}
	}
	return streamguard.Sanitize(redact.Scrub(text, redact.Secrets(b.req)), 256)
}

// logResume keeps a resume's record for StreamStats.
func (b *body) logResume(rec streamstat.Resume) {
	b.statMu.Lock()
	b.resumeLog = append(b.resumeLog, rec)
	b.statMu.Unlock()
}

// dropBOM drops a byte-order mark at the start of a continuation (where
// any event stream may have one), even split across reads: spliced into
// the middle of the stream, it would reach the consumer within a field's
// name, and the event would be lost. Bytes that only began like one go on
// as they were.
type dropBOM struct {
	io.ReadCloser
	held [3]byte // bytes of a mark seen so far
	n    int
	done bool
	out  []byte // held bytes to give back: they were not a mark
}

func (d *dropBOM) Read(p []byte) (int, error) {
	if len(d.out) > 0 {
		n := copy(p, d.out)
		d.out = d.out[n:]
		return n, nil
	}
	if d.done {
		return d.ReadCloser.Read(p)
	}
	n, err := d.ReadCloser.Read(p)
	if d.n == 0 && n > 0 && p[0] != bom[0] { // no mark: nothing held
		d.done = true
		return n, err
	}
	i := 0
	for ; i < n && d.n < len(bom) && p[i] == bom[d.n]; i++ {
		d.held[d.n] = p[i]
		d.n++
	}
	switch {
	case d.n == len(bom): // a whole mark: dropped
		d.done = true
		return copy(p, p[i:n]), err
	case i < n: // not a mark: what was held goes first
		d.done = true
		rest := append(d.held[:d.n:d.n], p[i:n]...)
		k := copy(p, rest)
		d.out = rest[k:]
		return k, err
	}
	if err != nil && d.n > 0 { // the body ended within what began like one
		d.done = true
		k := copy(p, d.held[:d.n])
		d.out = d.held[k:d.n]
		return k, err
	}
	return 0, err // all of it may be a mark: wait for more
}
