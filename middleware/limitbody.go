package middleware

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"

	"github.com/streamguard/streamguard"
	"github.com/streamguard/streamguard/internal/platform"
)

// LimitBody returns the layer that refuses a request body over
// cfg.MaxBody (cfg.AsyncMaxBody on the platform's async routes) before it
// is uploaded, with payload_too_large in the platform's words, instead of
// sending it to get the edge's 413. A body of unknown length (ContentLength
// 0 with a non-nil Body, as http.NewRequest leaves a reader it cannot
// measure, or -1) is counted as it is sent and fails once it passes the cap.
func LimitBody(cfg Config) Layer {
	return func(next http.RoundTripper) http.RoundTripper { return &limitBody{layer{next}, cfg} }
}

type limitBody struct {
	layer
	cfg Config
}

func (l *limitBody) RoundTrip(req *http.Request) (*http.Response, error) {
	limit := l.cfg.maxBody(platform.IsAsyncPath(req.URL.Path))
	if limit < 0 || req.Body == nil || req.Body == http.NoBody {
		return l.next.RoundTrip(req)
	}
	if req.ContentLength > limit {
		req.Body.Close() // a RoundTripper closes the body, even on error
		return nil, TooLarge(req.ContentLength, limit, false)
	}
	if req.ContentLength > 0 {
		return l.next.RoundTrip(req)
	}
	// Unknown length: net/http reads a non-nil Body with ContentLength 0
	// as unknown too, not as empty. A shallow copy carries the counted body:
	// the caller's request is never modified.
	counted := &limitedBody{rc: req.Body, limit: limit}
	out := new(http.Request)
	*out = *req
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
	resp, err := l.next.RoundTrip(out)
	if err != nil && counted.over() {
		return nil, TooLarge(counted.read(), limit, true)
	}
	return resp, err
}

// TooLarge returns the error for a request body over limit, in the platform's
// words: "payload size of X bytes exceeds maximum size of Y bytes". When the
// size is not known in full, atLeast says X is a lower bound.
func TooLarge(size, limit int64, atLeast bool) *streamguard.Error {
	msg := platform.TooLargeMessage(size, limit)
	if atLeast {
		msg = strings.Replace(msg, "payload size of ", "payload size of at least ", 1)
	}
	return &streamguard.Error{
		Source:  streamguard.SourceRequest,
		Reason:  streamguard.ReasonPayloadTooLarge,
		Message: msg,
		Limit:   limit,
	}
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
