package sse

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/streamguard/streamguard"
	"github.com/streamguard/streamguard/internal/coding"
	"github.com/streamguard/streamguard/internal/streamstat"
)

// Sending one resume: its request, the wait before it, the budget it
// draws on, and the check of its answer.

// errResumeHeaders is the failure of a resume whose response headers did
// not come within the stream's idle timeout.
var errResumeHeaders = errors.New("sse: no response to the resume within the idle timeout")

// errNoBudget is the resume error of a stream whose deadline comes before
// the wait before its resume would end.
var errNoBudget = errors.New("the request's deadline leaves no time for the wait before a resume")

// errBudgetSpent is the resume error of a stream whose next resume the
// retry budget (ResumeConfig.Budget) refused.
var errBudgetSpent = errors.New("the client's retry budget is spent: its requests and resumes failed too often of late")

// errBackoffStop is the resume error of a stream whose resume backoff gave
// up (ResumeConfig.Backoff returned backoff.Stop).
var errBackoffStop = errors.New("the resume backoff gave up")

// resumeOnce sends one resume request for the stream that failed with v.
// It returns the continuation, or whether another resume may be tried.
func (b *body) resumeOnce(v *streamguard.Error) (*http.Response, bool) {
	r := b.rs
	req, err := r.st.Request(r.ctx)
	if req == nil {
		r.err = err
		return nil, false
	}
	wait, err := r.wait(b.cfg.Resume)
	// A resume after one that brought nothing (no answer, or a
	// continuation that broke before a byte of it was delivered: not even
	// a comment) repeats a failed repair: it draws on the budget. One after
	// the stream went on repairs a new cut, as the first does.
	if err == nil && r.n > 0 && b.bytes == r.bytesAt && b.cfg.Resume.Budget != nil && !b.cfg.Resume.Budget.Spend() {
		err = errBudgetSpent
	}
	if err != nil {
		r.err = err
		closeBody(req)
		return nil, false
	}
	if !r.sleep(wait) {
		closeBody(req)
		return nil, false // the caller left: the verdict says so
	}
	r.n++
	r.bytesAt = b.bytes
	rec := streamstat.Resume{At: time.Now(), Protocol: r.name, Cause: string(v.Reason), LastEventID: v.LastEventID}
	resp, rtErr := r.roundTrip(req, b.idleAfter)
	if rtErr == nil {
		boundErrorBody(resp, b.cfg) // continuation reads an error's body
	}
	if err = continuation(resp, rtErr); err != nil {
		r.err = err
		if resp != nil {
			rec.StatusCode = resp.StatusCode
		}
		rec.Err = b.resumeText(err)
		b.logResume(rec)
		return nil, rtErr != nil && r.ctx.Err() == nil
	}
	r.err = nil
	rec.StatusCode = resp.StatusCode
	b.logResume(rec)
	if b.cfg.Resume.Budget != nil {
		b.cfg.Resume.Budget.Refund()
	}
	return resp, false
}

// roundTrip sends a resume request and gives up on it when its response
// headers do not come within limit, the stream's idle timeout (0: none): a
// resume must not hang where the stream itself would have stalled. The
// continuation's context lives until the next resume or the stream's end.
func (r *resuming) roundTrip(req *http.Request, limit time.Duration) (*http.Response, error) {
	r.end()
	if limit <= 0 {
		return r.rt.RoundTrip(req)
	}
	ctx, cancel := context.WithCancelCause(req.Context())
	t := time.AfterFunc(limit, func() { cancel(errResumeHeaders) })
	resp, err := r.rt.RoundTrip(req.WithContext(ctx))
	late := !t.Stop()
	switch {
	case err == nil && late:
		resp.Body.Close() // the headers came as the timer fired: the body is canceled
		err = errResumeHeaders
	case err != nil && context.Cause(ctx) == errResumeHeaders:
		err = errResumeHeaders
	}
	if err != nil {
		cancel(nil)
		return nil, err
	}
	r.release = cancel
	return resp, nil
}

// end releases the context of the continuation in use, if any.
func (r *resuming) end() {
	if r.release != nil {
		r.release(nil)
		r.release = nil
	}
}

// wait returns how long to wait before the next resume, or why there is
// none: the backoff gives up (errBackoffStop), or the request's deadline
// would pass first (errNoBudget).
func (r *resuming) wait(c ResumeConfig) (time.Duration, error) {
	d := r.retry
	if d <= 0 {
		if r.bo == nil {
			r.bo = c.backoff()
		}
		if d = r.bo.NextBackOff(); d == backoff.Stop {
			return 0, errBackoffStop
		}
	}
	d = min(d, c.maxWait())
	if dl, ok := r.ctx.Deadline(); ok && time.Until(dl) <= d {
		return d, errNoBudget
	}
	return d, nil
}

// sleep waits d, or until the caller leaves; false when it left.
func (r *resuming) sleep(d time.Duration) bool {
	if d <= 0 {
		return r.ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-r.ctx.Done():
		return false
	}
}

// closeBody closes the body of a resume request that is not sent (a body
// from GetBody may hold a file or a pipe).
func closeBody(req *http.Request) {
	if req.Body != nil {
		req.Body.Close()
	}
}

// continuation checks a resume's answer: a 2xx event stream, in no content
// coding (a caller's own Accept-Encoding). On any other
// answer it closes the body and returns why.
func continuation(resp *http.Response, err error) error {
	switch {
	case err != nil:
		return err
	case resp.StatusCode >= 400:
		e := streamguard.Check(resp)
		resp.Body.Close()
		return e
	case resp.StatusCode < 200 || resp.StatusCode > 299 || resp.StatusCode == http.StatusNoContent ||
		!IsEventStream(resp.Header.Get("Content-Type")):
		resp.Body.Close()
		return errors.New("the resume was answered " + strconv.Itoa(resp.StatusCode) + ", not an event stream")
	case coding.Encoded(resp.Header):
		resp.Body.Close()
		return errors.New("the resume was answered in a content coding, which the guard cannot read")
	}
	return nil
}
