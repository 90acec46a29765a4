package retry

import (
	"context"
	"errors"
	"io"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/streamguard/streamguard"
	"github.com/streamguard/streamguard/internal/ctxkey"
	"github.com/streamguard/streamguard/internal/streamstat"
)

// ErrHeaderTimeout is the cause (the Err of the *streamguard.Error) of an
// attempt abandoned because its response headers did not arrive within
// [Policy.HeaderTimeout].
var ErrHeaderTimeout = errors.New("no response headers within the attempt's header timeout")

// headerTimeoutError is the failure of an attempt whose headers did not
// come within the header timeout, and the cause its context ends with.
func (t *transport) headerTimeoutError() *streamguard.Error {
	return &streamguard.Error{
		Source: streamguard.SourcePlatform, Reason: streamguard.ReasonTimeout, Retryable: true,
		Message: "no response headers within the attempt's header timeout of " + t.headerTimeout.String(),
		Err:     ErrHeaderTimeout,
	}
}

// Header-timeout states of one attempt: the first to change it from
// waiting wins.
const (
	waiting int32 = iota
	timedOut
	answered
)

// send is attempt a's round trip through base, bounded by the header
// timeout when there is one: a context of its own that the timer cancels
// only while the headers are awaited. Once they arrive the timer is
// stopped, and the context is released when the body ends or is closed
// (never before: a stream may last long); a response that comes as the
// timer fires loses, and is closed.
func (t *transport) send(a *http.Request) (*http.Response, error) {
	if t.headerTimeout <= 0 {
		return roundTrip(t.base, a)
	}
	ctx, cancel := context.WithCancelCause(a.Context())
	var state atomic.Int32
	timer := time.AfterFunc(t.headerTimeout, func() {
		if state.CompareAndSwap(waiting, timedOut) {
			cancel(&ctxkey.Cause{Err: t.headerTimeoutError()}) // the layers below classify their end by it
		}
	})
	// A layer below (tracing) says when the headers came, before it
	// reads an error body: that read is not the headers' wait.
	ctx = ctxkey.WithHeadersArrived(ctx, func() {
		if state.CompareAndSwap(waiting, answered) {
			timer.Stop()
		}
	})
	resp, err := roundTrip(t.base, a.WithContext(ctx))
	timer.Stop()
	if !state.CompareAndSwap(waiting, answered) && state.Load() != answered {
		if resp != nil {
			resp.Body.Close()
		}
		cancel(nil)
		return nil, t.headerTimeoutError()
	}
	switch {
	case err != nil, resp.Body == nil, resp.Body == http.NoBody:
		cancel(nil)
	case resp.StatusCode == http.StatusSwitchingProtocols:
		// The body is the upgraded connection: keep it an io.Writer.
		if rwc, ok := resp.Body.(io.ReadWriteCloser); ok {
			resp.Body = upgradeBody{rwc, cancel}
		}
	default:
		resp.Body = watch(resp.Body, &endBody{cancel: cancel})
	}
	return resp, err
}

// upgradeBody is the connection of a 101 answer whose Close also releases
// the attempt's context.
type upgradeBody struct {
	io.ReadWriteCloser
	cancel context.CancelCauseFunc
}

func (b upgradeBody) Close() error {
	err := b.ReadWriteCloser.Close()
	b.cancel(nil)
	return err
}

// endBody is a response body watched to its end (io.EOF, a read error, or
// Close, whichever comes first): the end releases the attempt's
// header-timeout context, if it has one, and logs a stream that failed, if
// the policy has a logger. Read costs one call and a nil check more than the
// body beneath, and allocates nothing.
type endBody struct {
	rc     io.ReadCloser
	cancel context.CancelCauseFunc // nil without a header timeout
	t      *transport              // set when the policy logs: the body is the request's answer
	req    *http.Request           // the caller's request, for the log
	ended  atomic.Bool
}

// watch makes b watch rc, and returns it as a body that still reports the
// stream guard's statistics when rc does.
func watch(rc io.ReadCloser, b *endBody) io.ReadCloser {
	b.rc = rc
	if rep, ok := rc.(streamstat.Reporter); ok {
		return reporterEndBody{b, rep}
	}
	return b
}

// watched returns the endBody of body, if send or logFinal made it one.
func watched(body io.ReadCloser) *endBody {
	switch b := body.(type) {
	case *endBody:
		return b
	case reporterEndBody:
		return b.endBody
	}
	return nil
}

func (b *endBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	if err != nil {
		b.end(err)
	}
	return n, err
}

func (b *endBody) Close() error {
	err := b.rc.Close()
	b.end(nil)
	return err
}

// UnwrapBody returns the body beneath (internal/errprefix).
func (b *endBody) UnwrapBody() io.ReadCloser { return b.rc }

func (b *endBody) end(err error) {
	if !b.ended.CompareAndSwap(false, true) {
		return
	}
	if b.cancel != nil {
		b.cancel(nil)
	}
	if b.t != nil && err != nil && err != io.EOF {
		b.t.logStreamFailure(b.req, err)
	}
}

// reporterEndBody is the endBody of a guarded stream: it passes the guard's
// statistics on to the layers above.
type reporterEndBody struct {
	*endBody
	rep streamstat.Reporter
}

// StreamStats returns the guard's statistics.
func (b reporterEndBody) StreamStats() streamstat.Stats { return b.rep.StreamStats() }
