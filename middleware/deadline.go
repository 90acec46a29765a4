package middleware

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/streamguard/streamguard"
	"github.com/streamguard/streamguard/internal/platform"
)

// Deadline returns the layer that gives a request without an earlier
// deadline of its own its budget (cfg.Budget, or the platform's budget plus
// cfg.Grace; cfg.AsyncBudget on the async routes), from its first attempt
// to the end of its body, with streamguard.ErrBudgetExceeded as the
// context's cause; tells the server the time left in TimeoutHeader; and
// names the budget in the error of a request that outlived it, so that its
// hint quotes it.
func Deadline(cfg Config) Layer {
	return func(next http.RoundTripper) http.RoundTripper { return &deadline{layer{next}, cfg} }
}

type deadline struct {
	layer
	cfg Config
}

func (d *deadline) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	total, inForce := d.cfg.budgetInForce(platform.IsAsyncPath(req.URL.Path))
	end := time.Now().Add(total)
	if prev := req.Response; prev != nil && prev.Request != nil {
		// A redirect's hop: the budget runs from the first hop, as
		// http.Client.Timeout does (the request before carries its end).
		if dl, ok := prev.Request.Context().Deadline(); ok && dl.Before(end) {
			end = dl
		}
	}
	cancel := context.CancelFunc(nil)
	if dl, ok := ctx.Deadline(); !ok || dl.After(end) {
		ctx, cancel = context.WithDeadlineCause(ctx, end, streamguard.ErrBudgetExceeded)
	} else {
		end = dl
	}

	// A shallow copy: the RoundTripper contract forbids the layers beneath to
	// modify the request, and each value slice is capped so that even an
	// append cannot reach the caller's array.
	out := req.WithContext(ctx)
	out.Header = make(http.Header, len(req.Header)+1)
	for k, v := range req.Header {
		out.Header[k] = v[:len(v):len(v)]
	}
	if ms := time.Until(end).Milliseconds(); ms > 0 {
		out.Header[TimeoutHeader] = []string{strconv.FormatInt(ms, 10)}
	}

	resp, err := d.next.RoundTrip(out)
	if cancel == nil {
		return resp, err
	}
	if err != nil {
		cancel()
		return nil, withBudget(err, inForce)
	}
	resp.Body = &cancelBody{ReadCloser: resp.Body, cancel: cancel, budget: inForce}
	return resp, nil
}

// cancelBody releases the request's budget timer when the body ends or is
// closed, whichever comes first, as http.Client does with its own timeout,
// and names the budget in the error of a body that outlived it.
type cancelBody struct {
	io.ReadCloser
	cancel context.CancelFunc
	budget time.Duration
	err    error // the last error read, and what withBudget made of it
	out    error
}

func (c *cancelBody) Read(p []byte) (int, error) {
	n, err := c.ReadCloser.Read(p)
	if err != nil {
		c.cancel()
		if err != c.err {
			c.err, c.out = err, withBudget(err, c.budget)
		}
		err = c.out
	}
	return n, err
}

// UnwrapBody returns the body beneath (internal/errprefix).
func (c *cancelBody) UnwrapBody() io.ReadCloser { return c.ReadCloser }

func (c *cancelBody) Close() error {
	err := c.ReadCloser.Close()
	c.cancel()
	return err
}

// withBudget returns err with Budget set to the budget in force when err
// is the expiry of the budget the stack gave the request, so that its hint
// quotes that budget; any other error is returned as it is.
func withBudget(err error, budget time.Duration) error {
	se, ok := err.(*streamguard.Error)
	if !ok || se.Budget != 0 || se.Source != streamguard.SourcePlatform || !errors.Is(err, streamguard.ErrBudgetExceeded) {
		return err
	}
	e := *se
	e.Budget = budget
	return &e
}

// TimeLeft returns the layer to put beneath retry and resume, which send a
// request again later: it brings the TimeoutHeader that Deadline set up to
// date with the time the request's context has left, so that the server
// of a retry or a resume is not told of time the client no longer has (its
// work would outlive the client, whose deadline would cut off the
// server's own budget failure). A value within 100 ms of the truth goes
// as it is, without a copy of the request.
func TimeLeft() Layer {
	return func(next http.RoundTripper) http.RoundTripper { return &timeLeftRT{layer{next}} }
}

type timeLeftRT struct{ layer }

func (t *timeLeftRT) RoundTrip(req *http.Request) (*http.Response, error) {
	v := req.Header[TimeoutHeader]
	dl, ok := req.Context().Deadline()
	if len(v) != 1 || !ok {
		return t.next.RoundTrip(req)
	}
	left := max(time.Until(dl).Milliseconds(), 1)
	if sent, err := strconv.ParseInt(v[0], 10, 64); err != nil || sent-left < 100 {
		return t.next.RoundTrip(req)
	}
	out := new(http.Request)
	*out = *req
	out.Header = req.Header.Clone()
	out.Header[TimeoutHeader] = []string{strconv.FormatInt(left, 10)}
	return t.next.RoundTrip(out)
}
