package retry

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/streamguard/streamguard"
)

// checked gives the policy's CheckRetry, when it has one, the last word on
// failure f, which the policy would retry or not as retry says: it is asked
// about a status of 400 or more (classified first, if the policy did not
// need to) and about a round trip without a response, never about a
// success. A non-nil error stops the request.
func (t *transport) checked(ctx context.Context, f *failure, retry bool) (bool, error) {
	if t.check == nil {
		return retry, nil
	}
	if f.resp != nil {
		if f.resp.StatusCode < 400 {
			return retry, nil
		}
		if f.err == nil {
			t.classifyStatus(f.resp, f)
		}
		return t.check(ctx, f.resp, nil, retry)
	}
	return t.check(ctx, nil, f.err, retry)
}

// abort returns the error of a request that a hook (CheckRetry,
// BeforeRetry) stopped with err after n attempts, the last failing with f:
// one that wraps both, so that errors.Is finds the hook's error and
// errors.As the attempt's *streamguard.Error, with its Attempts and Elapsed.
// The failed response's body is closed.
func (f *failure) abort(err error, n int, start time.Time) error {
	if f.resp != nil {
		f.resp.Body.Close()
	}
	if f.err == nil {
		return fmt.Errorf("retry: stopped by the policy's hook after %d attempts: %w", n, err)
	}
	e := *f.err
	e.Attempts = n
	e.Elapsed = elapsed(n, start)
	return &abortError{hook: err, last: &e}
}

// abortError is a request a hook stopped: the hook's error and the last
// attempt's failure.
type abortError struct {
	hook error
	last *streamguard.Error
}

func (e *abortError) Error() string {
	return "retry: stopped by the policy's hook: " + e.hook.Error() + "; last failure: " + e.last.Error()
}

func (e *abortError) Unwrap() []error { return []error{e.hook, e.last} }

// isHeaderTimeout reports whether err is an attempt abandoned by the
// policy's HeaderTimeout.
func isHeaderTimeout(err error) bool { return errors.Is(err, ErrHeaderTimeout) }

// beforeRetrying returns the Attempt that attempt n of req, failed with f,
// is about to be retried after d, and asks the policy's BeforeRetry, which
// may stop the retries with an error. The Attempt's error has no Elapsed: it
// is not the request's failure, and its hint must not say the retries are
// spent. Without hooks or a logger it is the zero Attempt, made for nobody.
func (t *transport) beforeRetrying(req *http.Request, n int, f *failure, d time.Duration) (Attempt, error) {
	if t.beforeRetry == nil && t.onRetry == nil && t.log == nil {
		return Attempt{}, nil
	}
	e := *f.err
	e.Elapsed = 0
	at := Attempt{N: n, StatusCode: f.status(), Err: &e, Delay: d, Request: req}
	if t.beforeRetry != nil {
		if err := t.beforeRetry(at); err != nil {
			return at, err
		}
	}
	return at, nil
}

// notify tells the policy's OnRetry and Logger of the retry at, once the
// failed response's body is closed.
func (t *transport) notify(req *http.Request, at Attempt) {
	if t.onRetry != nil {
		t.onRetry(at)
	}
	t.logRetryOf(req, at)
}
