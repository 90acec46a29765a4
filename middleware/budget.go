package middleware

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/streamguard/streamguard"
	"github.com/streamguard/streamguard/internal/redact"
)

// budget is the outermost client layer: it refuses bodies over the
// platform's size limits before sending them, gives a request without a
// deadline its budget, and tells the server the time left.
type budget struct {
	next http.RoundTripper
	cfg  Config
}

func newBudget(next http.RoundTripper, cfg Config) *budget { return &budget{next: next, cfg: cfg} }

// CloseIdleConnections closes the idle connections of the transport
// beneath, so that http.Client.CloseIdleConnections reaches the base pool.
func (b *budget) CloseIdleConnections() {
	if c, ok := b.next.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

// TooLarge returns the error for a request body over limit, in the platform's
// words: "payload size of X bytes exceeds maximum size of Y bytes". When the
// size is not known in full, atLeast says X is a lower bound.
func TooLarge(size, limit int64, atLeast bool) *streamguard.Error {
	msg := streamguard.TooLargeMessage(size, limit)
	if atLeast {
		msg = strings.Replace(msg, "payload size of ", "payload size of at least ", 1)
	}
	return &streamguard.Error{
		Source:  streamguard.SourceRequest,
		Reason:  streamguard.ReasonPayloadTooLarge,
		Message: msg,
	}
}

func (b *budget) RoundTrip(req *http.Request) (*http.Response, error) {
	async := streamguard.IsAsyncPath(req.URL.Path)
	limit := b.cfg.maxBody(async)
	var counted *limitedBody
	if limit >= 0 && req.Body != nil && req.Body != http.NoBody {
		if req.ContentLength > limit {
			req.Body.Close() // a RoundTripper closes the body, even on error
			return nil, TooLarge(req.ContentLength, limit, false)
		}
		if req.ContentLength <= 0 {
			// Unknown length: net/http reads a non-nil Body with
			// ContentLength 0 as unknown too, not as empty.
			counted = &limitedBody{rc: req.Body, limit: limit}
		}
	}

	ctx := redact.WithHeaders(req.Context(), b.cfg.CredentialHeaders)
	total, inForce := b.cfg.budgetInForce(async)
	deadline := time.Now().Add(total)
	cancel := context.CancelFunc(nil)
	if d, ok := ctx.Deadline(); !ok || d.After(deadline) {
		ctx, cancel = context.WithDeadlineCause(ctx, deadline, streamguard.ErrBudgetExceeded)
	} else {
		deadline = d
	}

	// A shallow copy: the RoundTripper contract forbids the layers beneath to
	// modify the request, and each value slice is capped so that even an
	// append cannot reach the caller's array.
	out := req.WithContext(ctx)
	out.Header = make(http.Header, len(req.Header)+1)
	for k, v := range req.Header {
		out.Header[k] = v[:len(v):len(v)]
	}
	if counted != nil {
		out.Body = counted
		if req.GetBody != nil {
			getBody := req.GetBody
			out.GetBody = func() (io.ReadCloser, error) {
				rc, err := getBody()
				if err != nil {
					return nil, err
				}
				return &limitedBody{rc: rc, limit: limit}, nil
			}
		}
	}
	if ms := time.Until(deadline).Milliseconds(); ms > 0 {
		out.Header[TimeoutHeader] = []string{strconv.FormatInt(ms, 10)}
	}

	resp, err := b.next.RoundTrip(out)
	if err != nil {
		if cancel != nil {
			cancel()
		}
		if counted != nil && counted.over() {
			return nil, TooLarge(counted.read(), limit, true)
		}
		if cancel != nil {
			err = withBudget(err, inForce)
		}
		return nil, err
	}
	if cancel != nil {
		resp.Body = &cancelBody{ReadCloser: resp.Body, cancel: cancel, budget: inForce}
	}
	return resp, nil
}

// limitedBody fails a request body of unknown length once it passes limit,
// before the rest is uploaded.
type limitedBody struct {
	rc    io.ReadCloser
	limit int64
	mu    sync.Mutex // the transport may Close from another goroutine
	n     int64
}

var errBodyOverLimit = errors.New("request body over the size limit")

func (l *limitedBody) Read(p []byte) (int, error) {
	l.mu.Lock()
	room := l.limit + 1 - l.n
	l.mu.Unlock()
	if room <= 0 {
		return 0, errBodyOverLimit
	}
	if int64(len(p)) > room {
		p = p[:room]
	}
	n, err := l.rc.Read(p)
	l.mu.Lock()
	l.n += int64(n)
	over := l.n > l.limit
	l.mu.Unlock()
	if over {
		return n, errBodyOverLimit
	}
	return n, err
}

func (l *limitedBody) Close() error { return l.rc.Close() }

func (l *limitedBody) over() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.n > l.limit
}

func (l *limitedBody) read() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.n
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

// withBudget returns err with Budget set to the budget in force when err
// is the expiry of the budget the stack gave the request, so that its hint
// quotes that budget; any other error is returned as it is.
func withBudget(err error, budget time.Duration) error {
	se, ok := err.(*streamguard.Error)
	if !ok || se.Budget != 0 || !errors.Is(err, streamguard.ErrBudgetExceeded) {
		return err
	}
	e := *se
	e.Budget = budget
	return &e
}

func (c *cancelBody) Close() error {
	err := c.ReadCloser.Close()
	c.cancel()
	return err
}
