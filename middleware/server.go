package middleware

import (
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/streamguard/streamguard"
	"github.com/streamguard/streamguard/internal/redact"
	"github.com/streamguard/streamguard/tracing"
)

// DrainMessage is the body of the 503 a draining handler answers, in the
// platform's words.
const DrainMessage = "draining: retry on another instance"

// ServerConfig configures the server handler stack. The zero value is ready
// to use: the platform's 1200 s budget, a 100 MiB body cap, no heartbeat,
// the global OpenTelemetry providers, never draining, silent.
type ServerConfig struct {
	// Budget bounds each request, from its arrival to the end of its
	// response. An incoming Request-Timeout-Ms header (TimeoutHeader) that is
	// smaller wins. Zero means streamguard.SyncBudget (1200 s).
	Budget time.Duration
	// MaxBodyBytes caps a request body; over it the answer is 413 with the
	// platform's message "payload size of X bytes exceeds maximum size of Y
	// bytes". Zero means streamguard.EdgeMaxBody (100 MiB); negative means
	// no cap.
	MaxBodyBytes int64
	// Heartbeat writes an SSE comment on a text/event-stream response that
	// has written nothing for this long, so that proxies and the client's
	// idle timeout keep the stream open while the model thinks. The comment
	// is an event of its own (": keep-alive" and a blank line), written
	// only between the handler's events: the writer follows the handler's
	// line ends as the SSE spec defines them (CR, LF or CRLF, even split
	// between writes), and waits while an event is open. A response whose
	// body cannot take bytes of the writer's own gets none: one with a
	// Content-Length or a Content-Encoding other than identity (the
	// comment would take the place of declared bytes, or land as plain
	// text among compressed ones), a 204, a 304, the answer to a HEAD.
	// Zero means off.
	Heartbeat time.Duration
	// Tracing configures the SERVER span of each request.
	Tracing tracing.Config
	// Drain, when closed, starts draining: new requests get 503 with
	// DrainMessage and Retry-After, while requests in flight (streams
	// included) run to their end or their budget. Close it when shutdown
	// begins, before http.Server.Shutdown. Nil means never.
	Drain <-chan struct{}
	// DrainRetryAfter is the Retry-After of a draining 503. Zero means 1 s.
	DrainRetryAfter time.Duration
	// Logger, if set, receives panics (with their stack), requests whose
	// budget expired, and resume store failures: resumable streams the
	// store refused events of (the stream goes on to its client, but
	// resumes past the last event stored get 404), and streams served
	// without resume because the store failed. The failures a handler
	// reports itself (WriteError) are its own to log, and the 413s of
	// bodies over MaxBodyBytes and the 503s of a drain are not logged. Nil means silent. Nothing logged holds a header value: a
	// panic's value and an error's text are scrubbed of the request's
	// credentials and of key shapes.
	Logger *slog.Logger
	// Resume, if set, makes the handler's event streams resumable: each
	// event is stored and gets an id, the work outlives a broken client
	// connection for the linger, and a request with Last-Event-ID is
	// answered from the store (see Resumable). Nil means off.
	Resume *ResumeConfig
}

// errClientClosed is the cause the handler's context gets when a write to
// the client fails: the platform reports the same as 502 "client closed
// connection".
var errClientClosed = &streamguard.Error{
	Source:  streamguard.SourceClient,
	Reason:  streamguard.ReasonCanceled,
	Message: "client closed connection",
}

// NewHandler returns h inside the server stack, for model servers and for
// services that relay streams. Outermost first: tracing (a SERVER span that
// lasts the whole response), then the layers Drain, LimitRequestBody,
// Timeout, Recoverer, Heartbeat and Resumable, each of which can be used
// alone. The
// handler gets one wrapper around net/http's ResponseWriter, which the span
// reads what was sent from.
//
// Before the header is written, a failure is a JSON {"error": "..."} with
// Content-Type application/json: 504 when the budget expires, 500 for a
// panic, 413 for a body over MaxBodyBytes, 503 while draining, and the status
// of a *streamguard.Error given to WriteError (with the handler's header
// fields; the others keep only those set outside NewHandler: the budget's
// timer cannot read the handler's map while it writes). After a 2xx has
// started, the budget's expiry, a panic or WriteError end a
// text/event-stream response with one "event: error" frame
// (sse.AppendFailureFrame) and a clean end, when the stream stands at an
// event boundary; any other response is aborted with
// panic(http.ErrAbortHandler), so the client sees a truncated body, never a
// clean end that looks like success. An event stream with a Content-Length,
// or content-encoded (gzip), is such another response: the frame would
// overrun the length, or be plain text among compressed bytes.
//
// h's request context ends with the budget (cause
// streamguard.ErrBudgetExceeded), when the client goes away, or when a write
// to the client fails, so that upstream work stops. h must return once its
// context is done: a handler that never returns holds its connection. Never
// use http.TimeoutHandler around a stream: it buffers the whole response and
// cannot flush.
//
// h receives a ResponseWriter that keeps Flush, FlushError, Hijack, the
// deadlines, EnableFullDuplex and Unwrap: http.ResponseController works
// through it. Its Header is a map of h's own for the whole request: it
// starts with the fields set outside NewHandler, each header written (a 1xx
// or the final one) is that map as it stands, and the trailers set in it
// after the body go out when h returns, as with net/http's own writer.
// Once h returns, the writer refuses every write (http.ErrHandlerTimeout):
// a goroutine h left behind reaches nothing. The handler is safe for
// concurrent use.
func NewHandler(h http.Handler, cfg ServerConfig) http.Handler {
	for _, layer := range []func(http.Handler) http.Handler{
		Resumable(cfg), Heartbeat(cfg), Recoverer(cfg), Timeout(cfg), LimitRequestBody(cfg), Drain(cfg),
	} {
		h = layer(h)
	}
	traced := tracing.NewHandler(h, cfg.Tracing)
	// The stream writer is made outside the span, which reads what the
	// client was sent from it: one wrapper per request.
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		w, r, done := streamWriter(rw, r)
		defer done()
		traced.ServeHTTP(w, r)
	})
}

func (cfg ServerConfig) budget(r *http.Request) time.Duration {
	b := cfg.Budget
	if b <= 0 {
		b = streamguard.SyncBudget
	}
	if v := r.Header.Get(TimeoutHeader); v != "" {
		if ms, err := strconv.ParseInt(v, 10, 64); err == nil && ms > 0 && time.Duration(ms) < b/time.Millisecond {
			b = time.Duration(ms) * time.Millisecond
		}
	}
	return b
}

func (cfg ServerConfig) maxBody() int64 {
	switch {
	case cfg.MaxBodyBytes > 0:
		return cfg.MaxBodyBytes
	case cfg.MaxBodyBytes < 0:
		return -1
	}
	return streamguard.EdgeMaxBody
}

// log logs a failure of r's; the error's text is scrubbed of r's
// credentials and of key shapes, as everything logged is.
func (cfg ServerConfig) log(r *http.Request, msg string, err error) {
	if cfg.Logger != nil {
		cfg.Logger.Warn("streamguard: "+msg, "method", r.Method, "path", r.URL.Path, "error", redact.Request(err.Error(), r))
	}
}

// countingBody is the request body under MaxBodyBytes: it remembers whether
// the handler read past the limit, and how much it read.
type countingBody struct {
	io.ReadCloser
	limit int64
	mu    sync.Mutex
	n     int64
	hit   bool
}

func (c *countingBody) Read(p []byte) (int, error) {
	n, err := c.ReadCloser.Read(p)
	var mbe *http.MaxBytesError
	c.mu.Lock()
	c.n += int64(n)
	if errors.As(err, &mbe) {
		c.hit = true
	}
	c.mu.Unlock()
	return n, err
}

func (c *countingBody) over() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.hit
}

func (c *countingBody) read() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return max(c.n, c.limit+1)
}

func isNotSupported(err error) bool { return errors.Is(err, http.ErrNotSupported) }
