package sse

import (
	"math"
	"time"
)

// DefaultIdleTimeout is how long an event stream may send nothing (no
// event, comment or ping) before the guard ends it as stalled, when
// Config.IdleTimeout is zero: 120 s.
//
// The evidence: proxies and load balancers commonly cut a connection idle
// for 60 s (nginx's proxy_read_timeout, AWS ALB's idle timeout; Cloudflare
// waits 100 s), so a healthy stream that crosses one already sends
// something at least that often, and servers that think for long send
// keep-alive comments or pings (Anthropic's ping events, this library's
// server heartbeat) well inside it. Twice the common cut leaves a margin
// for a slow hop, and at 120 s a stall costs a tenth of the platform's
// 1200 s budget, where without a timeout it costs all of it. Hidden
// reasoning, which can send nothing for minutes, mostly happens before the
// first token: DefaultFirstByteTimeout covers it.
const DefaultIdleTimeout = 120 * time.Second

// DefaultFirstByteTimeout is how long the guard waits for an event
// stream's first byte after its header, when Config.FirstByteTimeout is
// zero: 600 s. A reasoning model may think for minutes before it streams
// anything, and a server sends its header before it starts; half the
// platform's 1200 s budget lets a long think finish, while a stream dead on
// arrival still fails with a clear verdict and half the budget left to
// retry.
const DefaultFirstByteTimeout = 600 * time.Second

// idleLimits returns the stall limits for a body: before its first byte
// and after it. Zero for both means no stall detection.
func (c Config) idleLimits(isSSE bool) (first, after time.Duration) {
	after = c.IdleTimeout
	switch {
	case after < 0:
		return 0, 0
	case after == 0 && !isSSE:
		return 0, 0 // a raw body's silences mean nothing known
	case after == 0:
		after = DefaultIdleTimeout
	}
	switch first = c.FirstByteTimeout; {
	case first == 0:
		first = max(DefaultFirstByteTimeout, after)
	case first < 0:
		first = after
	}
	return first, after
}

// startIdleTimer arms the stream's one idle timer when stall detection is
// on.
func (b *body) startIdleTimer() {
	b.idleFirst, b.idleAfter = b.cfg.idleLimits(b.isSSE || b.lines != nil)
	if b.idleAfter == 0 {
		return
	}
	b.epoch = time.Now()
	// Made stopped, then set: onTimer, which resets it, must find it.
	b.timer = time.AfterFunc(time.Duration(math.MaxInt64), b.onTimer)
	b.timer.Reset(min(b.idleFirst, b.idleAfter))
}

// upstreamRead reads from the response body, telling the idle timer that the
// guard is waiting for the upstream, and since when. Only a Read that is
// pending counts: when one returns, the next one starts the clock again, and
// the reader's own time between them never counts.
func (b *body) upstreamRead(p []byte) (int, error) {
	if b.timer == nil {
		n, err := b.rc.Read(p)
		b.keepHead(p[:n])
		return n, err
	}
	b.readSince.Store(int64(time.Since(b.epoch)) + 1)
	n, err := b.rc.Read(p)
	b.readSince.Store(0)
	b.keepHead(p[:n])
	if n > 0 && !b.began.Load() {
		b.began.Store(true)
	}
	return n, err
}

// onTimer runs when the idle timer fires: it stalls the stream when the
// guard has waited for the upstream for the limit in force (idleFirst
// before the first byte, idleAfter from then on), and re-arms otherwise.
// It fires at least every idleAfter, so that a stall right after the first
// byte is caught in time. One timer serves the whole stream; Read never
// touches it.
func (b *body) onTimer() {
	if b.closed.Load() || b.finished.Load() {
		return
	}
	limit := b.idleAfter
	if !b.began.Load() {
		limit = b.idleFirst
	}
	next := limit
	if since := b.readSince.Load(); since != 0 {
		idle := time.Since(b.epoch) - time.Duration(since-1)
		if idle >= limit {
			b.stallLimit.Store(int64(limit))
			b.stalled.Store(true)
			b.closeUpstream() // unblocks the pending Read
			return
		}
		next -= idle
	}
	b.timer.Reset(min(next, b.idleAfter))
}

// stallMessage says what the stalled stream waited for.
func (b *body) stallMessage() string {
	limit := time.Duration(b.stallLimit.Load())
	if !b.began.Load() {
		return "no first byte within " + limit.String()
	}
	return "no bytes for " + limit.String()
}
