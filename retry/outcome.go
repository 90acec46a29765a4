package retry

import (
	"net/http"
	"time"

	"github.com/streamguard/streamguard"
	"github.com/streamguard/streamguard/internal/ctxkey"
	"github.com/streamguard/streamguard/internal/errprefix"
)

// failure is a retryable failure of one attempt: a response whose body has
// been partly read, or an error.
type failure struct {
	resp   *http.Response
	prefix []byte // the first bytes of resp.Body, read to classify it
	eof    bool   // prefix is the whole body
	err    *streamguard.Error
	hint   time.Duration // the server's Retry-After
	hinted bool
}

func (f *failure) status() int {
	if f.resp == nil {
		return 0
	}
	return f.resp.StatusCode
}

// result returns the failure as RoundTrip's answer: the response with its
// body intact (errprefix.Keep gives back what it read), or the error.
func (f *failure) result() (*http.Response, error) {
	if f.resp == nil {
		return nil, f.err
	}
	return f.resp, nil
}

// discard closes the failure's response body, which errprefix.Keep has
// read as far as it will (streamguard.MaxErrorBody), so that the
// connection goes back to the pool before the wait. What was read is kept
// as the body of the outcome, in case it has to be returned after all.
func (f *failure) discard() outcome {
	if f.resp == nil {
		return outcome{err: f.err}
	}
	f.resp.Body.Close()
	f.resp.Body = errprefix.Detached(f.prefix, f.eof, errDiscarded)
	return outcome{resp: f.resp}
}

// outcome is a failure discarded to retry: returned instead of the
// context's error when the caller's context ends before the next attempt
// gives an answer.
type outcome struct {
	resp *http.Response // body closed; its first bytes kept in memory
	err  *streamguard.Error
}

func (o outcome) valid() bool { return o.resp != nil || o.err != nil }

// result returns the outcome as the answer after n attempts of a request
// whose first attempt began at start.
func (o outcome) result(n int, start time.Time) (*http.Response, error) {
	if o.resp != nil {
		r := o.resp.Request
		if r != nil {
			o.resp.Request = r.WithContext(ctxkey.WithAttemptStart(r.Context(), n, start))
		}
		return o.resp, nil
	}
	e := *o.err
	e.Attempts = n
	e.Elapsed = elapsed(n, start)
	return nil, &e
}
