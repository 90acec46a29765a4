package middleware

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strconv"
	"sync"
	"time"

	"github.com/streamguard/streamguard"
	"github.com/streamguard/streamguard/tracing"
	"go.opentelemetry.io/otel/trace"
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
	// between writes), and waits while an event is open. Zero means off.
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
	// Logger, if set, receives panics (with their stack) and failed
	// responses. Nil means silent. Nothing logged holds a header value.
	Logger *slog.Logger
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
// lasts the whole response), draining, the body cap, the budget, panics.
//
// Before the header is written, a failure is a JSON {"error": "..."} with
// Content-Type application/json: 504 when the budget expires, 500 for a
// panic, 413 for a body over MaxBodyBytes, 503 while draining, and the status
// of a *streamguard.Error given to WriteError. After a 2xx has started, the
// budget's expiry, a panic or WriteError end a text/event-stream response
// with one "event: error" frame (sse.AppendFailureFrame) and a clean end,
// when the stream stands at an event boundary; any other response is aborted
// with panic(http.ErrAbortHandler), so the client sees a truncated body,
// never a clean end that looks like success.
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
// through it. The handler is safe for concurrent use.
func NewHandler(h http.Handler, cfg ServerConfig) http.Handler {
	return tracing.NewHandler(&server{h: h, cfg: cfg}, cfg.Tracing)
}

type server struct {
	h   http.Handler
	cfg ServerConfig
}

func (s *server) budget(r *http.Request) time.Duration {
	b := s.cfg.Budget
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

func (s *server) maxBody() int64 {
	switch {
	case s.cfg.MaxBodyBytes > 0:
		return s.cfg.MaxBodyBytes
	case s.cfg.MaxBodyBytes < 0:
		return -1
	}
	return streamguard.EdgeMaxBody
}

func (s *server) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	span := trace.SpanFromContext(r.Context())
	if s.draining(rw) {
		return
	}
	body, ok := s.limitBody(rw, r, span)
	if !ok {
		return
	}

	budget := s.budget(r)
	deadline := time.Now().Add(budget)
	ctx, cancelBudget := context.WithDeadlineCause(r.Context(), deadline, streamguard.ErrBudgetExceeded)
	defer cancelBudget()
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	// The write deadline lets the budget's own 504 or failure frame out
	// first, and then fails a write stuck on a client that stopped reading.
	_ = http.NewResponseController(rw).SetWriteDeadline(deadline.Add(5 * time.Second))

	w := &writer{rw: rw, header: make(http.Header), cancel: cancel, heartbeat: s.cfg.Heartbeat}
	r2 := r.WithContext(ctx)
	if body != nil {
		r2.Body = body
	}
	// The budget ends the response when it expires, while the handler
	// runs, and again (to no effect if done) when the handler returns: the
	// handler may see its context end and return before the callback runs.
	expire := func() {
		if errors.Is(context.Cause(ctx), streamguard.ErrBudgetExceeded) {
			err := &streamguard.Error{Source: streamguard.SourcePlatform, Reason: streamguard.ReasonTimeout,
				Message: "request budget of " + budget.String() + " exceeded", Err: streamguard.ErrBudgetExceeded}
			if w.end(http.StatusGatewayTimeout, err, false) {
				tracing.Annotate(span, err)
				s.log(r, "request budget exceeded", err)
			}
		}
	}
	stop := context.AfterFunc(ctx, expire)
	defer stop()

	defer func() {
		// The ServeMux below sets the route on our copy of the request; give
		// it back to the span's request, which the tracing layer reads when
		// it ends the span.
		r.Pattern = r2.Pattern
		s.recovered(w, r, span, recover())
		expire()
		if body != nil && body.over() {
			err := TooLarge(body.read(), body.limit, true)
			if w.end(http.StatusRequestEntityTooLarge, err, true) {
				tracing.Annotate(span, err)
			}
		}
		if w.close() {
			panic(http.ErrAbortHandler)
		}
	}()
	s.h.ServeHTTP(w, r2)
}

// draining answers 503 with Retry-After, and reports true, once
// ServerConfig.Drain is closed.
func (s *server) draining(rw http.ResponseWriter) bool {
	select {
	case <-s.cfg.Drain:
	default:
		return false
	}
	ra := s.cfg.DrainRetryAfter
	if ra <= 0 {
		ra = time.Second
	}
	rw.Header().Set("Retry-After", strconv.Itoa(int(max(1, (ra+time.Second-1)/time.Second))))
	writeJSON(rw, http.StatusServiceUnavailable, DrainMessage)
	return true
}

// limitBody answers 413 to a body whose declared length is over the cap
// (ok false), and otherwise returns the counting body the handler reads,
// or nil when there is no body or no cap.
func (s *server) limitBody(rw http.ResponseWriter, r *http.Request, span trace.Span) (body *countingBody, ok bool) {
	limit := s.maxBody()
	if limit < 0 || r.Body == nil || r.Body == http.NoBody {
		return nil, true
	}
	if r.ContentLength > limit {
		err := TooLarge(r.ContentLength, limit, false)
		tracing.Annotate(span, err)
		writeJSON(rw, http.StatusRequestEntityTooLarge, err.Message)
		return nil, false
	}
	return &countingBody{ReadCloser: http.MaxBytesReader(innermost(rw), r.Body, limit), limit: limit}, true
}

// recovered handles what the handler's panic left, p (nil: none): the
// handler's own http.ErrAbortHandler is passed on; any other panic is
// logged and answered as the model's internal error.
func (s *server) recovered(w *writer, r *http.Request, span trace.Span, p any) {
	switch p {
	case nil:
		return
	case http.ErrAbortHandler:
		w.close()
		panic(p) // the handler's own abort
	}
	err := &streamguard.Error{Source: streamguard.SourceModel, Reason: streamguard.ReasonModelError,
		Message: "internal server error"}
	if s.cfg.Logger != nil {
		s.cfg.Logger.Error("streamguard: handler panic", "method", r.Method, "path", r.URL.Path,
			"panic", fmt.Sprint(p), "stack", string(debug.Stack()))
	}
	if w.end(http.StatusInternalServerError, err, false) {
		tracing.Annotate(span, err)
	}
}

func (s *server) log(r *http.Request, msg string, err error) {
	if s.cfg.Logger != nil {
		s.cfg.Logger.Warn("streamguard: "+msg, "method", r.Method, "path", r.URL.Path, "error", err.Error())
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
