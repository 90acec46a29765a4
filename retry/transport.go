package retry

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/streamguard/streamguard"
	"github.com/streamguard/streamguard/internal/ctxkey"
	"github.com/streamguard/streamguard/internal/errprefix"
	"github.com/streamguard/streamguard/internal/redact"
)

// NewTransport returns a RoundTripper that sends each request through base
// and retries it as p says. A nil base means http.DefaultTransport.
//
// The RoundTripper is safe for concurrent use. It never modifies the
// caller's request: each attempt is a shallow copy (as Request.WithContext
// makes) with its own context and body. It returns a 2xx as soon as base
// does, and any response it does not retry as base returned it. When the
// retries on a status are spent it returns the last response with a nil
// error and its body intact; when no response was obtained it returns a
// *streamguard.Error carrying the attempts made and the cause. It implements
// CloseIdleConnections by forwarding it to base, and never calls it itself.
func NewTransport(base http.RoundTripper, p Policy) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	t := &transport{
		base:        base,
		statuses:    []int{http.StatusBadGateway, http.StatusServiceUnavailable},
		maxAttempts: p.MaxAttempts,
		newBackoff:  p.Backoff,
		maxHint:     p.MaxRetryAfter,
		throttle:    p.Throttle,
		onRetry:     p.OnRetry,
		unsafe:      p.RetryNonIdempotent,
		maxBuffered: p.MaxBufferedBody,
		minAttempt:  p.MinAttemptTime,
		check:       p.CheckRetry,
		beforeRetry: p.BeforeRetry,
		log:         p.Logger,
	}
	if p.HeaderTimeout > 0 {
		t.headerTimeout = p.HeaderTimeout
	}
	if p.Statuses != nil {
		t.statuses, t.explicit = slices.Clone(p.Statuses), true
	}
	switch {
	case t.maxAttempts == 0:
		t.maxAttempts = DefaultMaxAttempts
	case t.maxAttempts < 0:
		t.maxAttempts = 1
	}
	if t.newBackoff == nil {
		t.newBackoff = DefaultBackoff
	}
	if t.maxHint == 0 {
		t.maxHint = DefaultMaxRetryAfter
	}
	if t.maxBuffered == 0 {
		t.maxBuffered = DefaultMaxBufferedBody
	}
	switch {
	case t.minAttempt == 0:
		t.minAttempt = DefaultMinAttemptTime
	case t.minAttempt < 0:
		t.minAttempt = 0
	}
	return t
}

// transport is the RoundTripper NewTransport returns. It is immutable after
// construction.
type transport struct {
	base        http.RoundTripper
	statuses    []int
	explicit    bool // statuses were listed by the caller
	maxAttempts int
	newBackoff  func() backoff.BackOff
	maxHint     time.Duration // < 0: hints ignored
	throttle    *Throttle
	onRetry     func(Attempt)
	unsafe      bool // retry non-idempotent requests after a possible send
	maxBuffered int64
	minAttempt  time.Duration
	check       func(context.Context, *http.Response, error, bool) (bool, error)
	beforeRetry func(Attempt) error
	log         *slog.Logger
	// headerTimeout bounds each attempt's wait for its headers; 0: none.
	headerTimeout time.Duration
}

// CloseIdleConnections closes base's idle connections, if base has that
// method, so that http.Client.CloseIdleConnections reaches through.
func (t *transport) CloseIdleConnections() {
	if c, ok := t.base.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

// newAttempt returns attempt n of req: a shallow copy whose context
// carries n and, for a retry, the start of the first attempt, with body rc
// (nil: req's own, which is nil or http.NoBody).
func newAttempt(req *http.Request, n int, start time.Time, rc io.ReadCloser, src *bodySource) *http.Request {
	a := req.WithContext(ctxkey.WithAttemptStart(req.Context(), n, start))
	if rc != nil {
		a.Body = rc
	}
	if src.buffered {
		a.GetBody = src.getBody // lets the transport's own retries rewind
	}
	return a
}

// mayHaveSent reports whether attempt a, which failed without a response,
// may have sent its request to a server. An attempt without a body counts:
// its headers are the whole request.
func mayHaveSent(a *http.Request) bool {
	return a.Body == nil || a.Body == http.NoBody || !bodyUnread(a.Body, a.ContentLength)
}

// RoundTrip sends req, retrying as the policy says, and logs its answer
// when the policy has a logger.
func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.run(req)
	t.logFinal(req, resp, err)
	return resp, err
}

// run sends req, retrying as the policy says.
func (t *transport) run(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	src, err := newBodySource(req, t.maxBuffered)
	if err != nil {
		return nil, err
	}
	var (
		bo   backoff.BackOff // made at the first retry: most requests need none
		last outcome         // the last failure discarded to retry
		rc   = src.first
		// start is when the first attempt began: the origin of Elapsed.
		start = time.Now()
	)
	for n := 1; ; n++ {
		a := newAttempt(req, n, start, rc, &src)
		resp, err := t.send(a)
		rc = nil

		if err != nil && ctx.Err() != nil {
			// The caller's context ended this attempt: that is not the
			// failure to report when a real one came before.
			if last.valid() {
				return last.result(n, start)
			}
			return nil, noResponse(canceled(ctx, err), req, n, start)
		}
		f, retry := t.judge(a, req, resp, err, n, start, src.replay)
		retry, err = t.checked(ctx, &f, retry)
		switch {
		case err != nil:
			return nil, f.abort(err, n, start)
		case !retry:
			return f.result()
		}

		// Attempt n failed in a way worth retrying. gRFC A6 takes the token
		// before looking at the attempts left.
		if t.throttle.fail() || n >= t.maxAttempts || !src.replay || ctx.Err() != nil {
			return f.result()
		}
		if bo == nil {
			bo = t.newBackoff()
			bo.Reset()
		}
		d, ok := t.delay(ctx, bo, &f)
		if !ok {
			return f.result()
		}
		next, err := src.next()
		if err != nil {
			return f.result() // GetBody failed: this failure is the answer
		}
		at, err := t.beforeRetrying(req, n, &f, d)
		if err != nil {
			if next != nil {
				next.Close()
			}
			return nil, f.abort(err, n, start)
		}
		last = f.discard()
		t.notify(req, at)
		if !sleep(ctx, d) {
			if next != nil {
				next.Close()
			}
			return last.result(n, start)
		}
		rc = next
	}
}

// judge classifies attempt a of req, which returned resp or err (not the
// caller's context's), and says whether the policy retries it. A response it
// returns at once (a success, a status that is not retried) is in f
// untouched, without an error.
func (t *transport) judge(a, req *http.Request, resp *http.Response, err error, n int, start time.Time, replay bool) (f failure, retry bool) {
	switch {
	case err != nil:
		f.err = noResponse(err, req, n, start)
		if t.resends(err, a, req) {
			return f, true
		}
		if classifySend(err) == permanent {
			f.err.Retryable = false
		}
		return f, false
	case !t.retries(resp):
		if resp.StatusCode < 400 {
			t.throttle.succeed()
		}
		f.resp = resp
		return f, false
	case t.throttle == nil && t.check == nil && (n >= t.maxAttempts || !replay):
		f.resp = resp // no retry possible: leave the body untouched
		return f, false
	}
	return f, t.failedStatus(resp, &f)
}

// roundTrip is base.RoundTrip, with a response that comes with an error
// (a broken base) closed and dropped: the error wins, as in http.Client;
// and a response without its Request given the attempt's.
func roundTrip(base http.RoundTripper, a *http.Request) (*http.Response, error) {
	resp, err := base.RoundTrip(a)
	if err != nil && resp != nil {
		if resp.Body != nil {
			resp.Body.Close()
		}
		resp = nil
	}
	if resp != nil && resp.Request == nil {
		// As net/http's transport sets it: what classifies the response
		// takes the credentials to scrub from the request it names.
		resp.Request = a
	}
	return resp, err
}

// failedStatus records resp, whose status the policy retries, in f (see
// classifyStatus) and reports whether the policy retries it: not the
// client's own failure, nor one Classify calls not retryable when the
// caller did not list its status.
func (t *transport) failedStatus(resp *http.Response, f *failure) bool {
	t.classifyStatus(resp, f)
	return f.err.Source != streamguard.SourceClient && (t.explicit || f.err.Retryable)
}

// classifyStatus records resp in f: its classification (reading the body's
// first bytes once, errprefix.Keep, which leaves them readable) and the
// server's Retry-After.
func (t *transport) classifyStatus(resp *http.Response, f *failure) {
	f.resp = resp
	f.prefix, f.eof = errprefix.Keep(resp)
	f.err = streamguard.Classify(resp, f.prefix)
	if t.maxHint >= 0 {
		f.hint, f.hinted = RetryAfter(resp.Header, time.Now())
	}
}

// resends reports whether attempt a of req, which failed with err before
// any response, may be sent again: always when it never reached a server or
// waited past the policy's HeaderTimeout;
// when it may have, only if it is idempotent (or the policy allows it) or
// its body was never read; never for a permanent or unknown failure.
func (t *transport) resends(err error, a, req *http.Request) bool {
	if isHeaderTimeout(err) {
		return true // the caller asked for slow attempts to be sent again
	}
	switch classifySend(err) {
	case notSent:
		return true
	case maybeSent:
		return !mayHaveSent(a) || t.unsafe || idempotent(req)
	}
	return false
}

// delay returns the wait before the attempt after failure f, and false
// when there is no room for one: the backoff is spent, the server's
// Retry-After runs past the deadline (it will not be ready in time), or the
// wait would leave less than MinAttemptTime before the deadline (never wait
// past the budget).
func (t *transport) delay(ctx context.Context, bo backoff.BackOff, f *failure) (time.Duration, bool) {
	d := bo.NextBackOff()
	if d == backoff.Stop {
		return 0, false
	}
	deadline, hasDeadline := ctx.Deadline()
	// A hint of 0 (Retry-After: 0, a date past) is the backoff's wait, as
	// openai-python has it: taken as it is, a server that sends it on
	// every answer would be retried at once, without jitter, a storm.
	if f.hinted && f.hint > 0 {
		if hasDeadline && f.hint > time.Until(deadline) {
			return 0, false
		}
		d = min(f.hint, t.maxHint)
	}
	d = max(d, 0)
	if hasDeadline && time.Until(deadline)-t.minAttempt < d {
		return 0, false
	}
	return d, true
}

// retries reports whether resp's status is one the policy retries: one of
// the listed statuses; or, when the caller listed none, 502 and 503, and 429
// when the response says when to come back (a Retry-After or
// retry-after-ms hint that is not ignored). Whether Classify agrees is for
// the caller to check once the body's prefix is read.
func (t *transport) retries(resp *http.Response) bool {
	if slices.Contains(t.statuses, resp.StatusCode) {
		return true
	}
	if t.explicit || resp.StatusCode != http.StatusTooManyRequests || t.maxHint < 0 {
		return false
	}
	_, hinted := RetryAfter(resp.Header, time.Now())
	return hinted
}

// noResponse classifies the error of attempt n of req, which obtained no
// response, for a request whose first attempt began at start. It copies
// the *streamguard.Error FromError returns, which may be one that err
// wraps and that is not ours to change. Its text is scrubbed of req's
// credentials, which a server may have echoed into a transport error (a
// malformed status line, an HTTP/2 GOAWAY's debug data); when they were
// there, its Err is that scrubbed text too, which errors.Is still sees
// through (redact.Error).
func noResponse(err error, req *http.Request, n int, start time.Time) *streamguard.Error {
	e := *streamguard.FromError(err)
	if secrets := redact.Secrets(req); len(secrets) > 0 {
		e.Message = redact.Scrub(e.Message, secrets)
		if e.Err != nil {
			if text := e.Err.Error(); redact.Scrub(text, secrets) != text {
				e.Err = redact.Error(e.Err, redact.Scrub(text, secrets))
			}
		}
	}
	e.Attempts = n
	e.Elapsed = elapsed(n, start)
	return &e
}

// elapsed is streamguard.Error.Elapsed after n attempts of a request whose
// first attempt began at start: the time since start once the request was
// retried, zero for a single attempt.
func elapsed(n int, start time.Time) time.Duration {
	if n <= 1 {
		return 0
	}
	return max(time.Since(start), 0)
}

// sleep waits d, or until ctx ends; it reports whether the wait ran out.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return true
	case <-ctx.Done():
		return false
	}
}
