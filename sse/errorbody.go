package sse

import (
	"fmt"
	"io"
	"net/http"
	"sync/atomic"
	"time"
)

// boundErrorBody bounds the reading of an error response's body (status 400
// or more) by the idle limit (Config.IdleTimeout, DefaultIdleTimeout when
// zero, none when negative): a server that sent an error's header and then
// sends nothing has its body cut once a Read has waited that long. Every
// layer that classifies an error reads its body first (streamguard.Check),
// and would hold the caller until the request's deadline otherwise.
func boundErrorBody(resp *http.Response, cfg Config) {
	limit := cfg.IdleTimeout
	if limit == 0 {
		limit = DefaultIdleTimeout
	}
	if limit < 0 || resp.StatusCode < 400 || resp.Body == nil || resp.Body == http.NoBody {
		return
	}
	resp.Body = &errorBody{ReadCloser: resp.Body, limit: limit}
}

// errorBody is an error response's body whose Reads are bounded by limit.
// Only a Read that is pending counts, as for a stream.
type errorBody struct {
	io.ReadCloser
	limit time.Duration
	timer *time.Timer // made by the first Read
	cut   atomic.Bool // the timer fired and closed the body
}

func (e *errorBody) Read(p []byte) (int, error) {
	if e.timer == nil {
		e.timer = time.AfterFunc(e.limit, e.stall)
	} else {
		e.timer.Reset(e.limit)
	}
	n, err := e.ReadCloser.Read(p)
	e.timer.Stop()
	if err != nil && err != io.EOF && e.cut.Load() {
		err = fmt.Errorf("%w: the error response's body sent no bytes for %v", ErrIdleTimeout, e.limit)
	}
	return n, err
}

func (e *errorBody) stall() {
	e.cut.Store(true)
	e.ReadCloser.Close() // unblocks the pending Read
}

// UnwrapBody returns the body beneath (the library's one reading of an
// error body finds what was read of it through this).
func (e *errorBody) UnwrapBody() io.ReadCloser { return e.ReadCloser }
