package middleware

import (
	"context"
	"encoding/json"
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
	// idle timeout keep the stream open while the model thinks. Zero means
	// off.
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
	select {
	case <-s.cfg.Drain:
		ra := s.cfg.DrainRetryAfter
		if ra <= 0 {
			ra = time.Second
		}
		rw.Header().Set("Retry-After", strconv.Itoa(int(max(1, (ra+time.Second-1)/time.Second))))
		writeJSON(rw, http.StatusServiceUnavailable, DrainMessage)
		return
	default:
	}

	limit := s.maxBody()
	var body *countingBody
	if limit >= 0 && r.Body != nil && r.Body != http.NoBody {
		if r.ContentLength > limit {
			err := TooLarge(r.ContentLength, limit, false)
			tracing.Annotate(span, err)
			writeJSON(rw, http.StatusRequestEntityTooLarge, err.Message)
			return
		}
		body = &countingBody{ReadCloser: http.MaxBytesReader(innermost(rw), r.Body, limit), limit: limit}
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
		p := recover()
		if p == http.ErrAbortHandler {
			w.close()
			panic(p) // the handler's own abort
		}
		if p != nil {
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
		expire()
		if body != nil && body.over() {
			err := TooLarge(body.read(), limit, true)
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

func (s *server) log(r *http.Request, msg string, err error) {
	if s.cfg.Logger != nil {
		s.cfg.Logger.Warn("streamguard: "+msg, "method", r.Method, "path", r.URL.Path, "error", err.Error())
	}
}

// WriteError reports err to the client of a handler inside NewHandler. Before
// the header is written it answers JSON {"error": "..."} with the status of a
// *streamguard.Error (StatusFor), 413 for an *http.MaxBytesError, 504 for
// an expired budget or deadline, 499 for a cancellation, and 500 for any other
// error, which is the handler's own (source model, reason model_error). After a 2xx text/event-stream header, it writes one "event:
// error" frame and ends the stream cleanly; after any other header it marks
// the response to be aborted when the handler returns, so the client sees a
// truncated body. Either way, later writes fail and the request's span is
// tagged with err. Call it once and return.
//
// Outside NewHandler, WriteError cannot know whether the header went out; it
// writes the JSON error.
func WriteError(w http.ResponseWriter, r *http.Request, err error) {
	if err == nil {
		return
	}
	se := serverError(err)
	status := StatusFor(se)
	if r != nil {
		tracing.Annotate(trace.SpanFromContext(r.Context()), se)
	}
	if mw := findWriter(w); mw != nil {
		mw.end(status, se, false)
		return
	}
	writeJSON(w, status, errorMessage(se))
}

// serverError classifies an error a handler reports: a *streamguard.Error as
// it is (an upstream failure a relay passes on), a body over the cap as
// payload_too_large, the budget's or a deadline's expiry as the platform's
// timeout, a cancellation as the client's, and anything else as the
// handler's own failure: source model, reason model_error.
func serverError(err error) *streamguard.Error {
	var se *streamguard.Error
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &se):
		return se
	case errors.As(err, &mbe):
		return TooLarge(mbe.Limit+1, mbe.Limit, true)
	case errors.Is(err, streamguard.ErrBudgetExceeded), errors.Is(err, context.DeadlineExceeded):
		return &streamguard.Error{Source: streamguard.SourcePlatform, Reason: streamguard.ReasonTimeout,
			Message: streamguard.Sanitize(err.Error(), streamguard.MaxMessage), Err: err}
	case errors.Is(err, context.Canceled):
		return &streamguard.Error{Source: streamguard.SourceClient, Reason: streamguard.ReasonCanceled,
			Message: streamguard.Sanitize(err.Error(), streamguard.MaxMessage), Err: err}
	}
	return &streamguard.Error{Source: streamguard.SourceModel, Reason: streamguard.ReasonModelError,
		Message: streamguard.Sanitize(err.Error(), streamguard.MaxMessage), Err: err}
}

// StatusFor returns the HTTP status to answer for e: its own StatusCode when
// it is an error status, else the status its reason maps to (payload too
// large 413, timeout 504, unavailable 503, canceled 499, ...).
func StatusFor(e *streamguard.Error) int {
	if e.StatusCode >= 400 && e.StatusCode <= 599 {
		return e.StatusCode
	}
	switch e.Reason {
	case streamguard.ReasonBadRequest:
		return http.StatusBadRequest
	case streamguard.ReasonUnauthorized:
		return http.StatusUnauthorized
	case streamguard.ReasonNotFound:
		return http.StatusNotFound
	case streamguard.ReasonBilling:
		return http.StatusPaymentRequired
	case streamguard.ReasonPayloadTooLarge:
		return http.StatusRequestEntityTooLarge
	case streamguard.ReasonRateLimited:
		return http.StatusTooManyRequests
	case streamguard.ReasonUnavailable:
		return http.StatusServiceUnavailable
	case streamguard.ReasonTimeout, streamguard.ReasonStalled:
		return http.StatusGatewayTimeout
	case streamguard.ReasonCanceled:
		return 499 // the client closed the request, as nginx and the gateway log it
	case streamguard.ReasonUnreachable, streamguard.ReasonPlatformError, streamguard.ReasonConnection,
		streamguard.ReasonTruncated, streamguard.ReasonEventTooLarge:
		return http.StatusBadGateway
	}
	return http.StatusInternalServerError
}

// errorMessage is the message of err for a JSON error body: a
// *streamguard.Error's Message (or its reason), or err's text, sanitized.
func errorMessage(err error) string {
	var se *streamguard.Error
	if errors.As(err, &se) {
		if se.Message != "" {
			return streamguard.Sanitize(se.Message, streamguard.MaxMessage)
		}
		return string(se.Reason)
	}
	return streamguard.Sanitize(err.Error(), streamguard.MaxMessage)
}

// writeJSON answers status with the platform's error body {"error": msg}.
func writeJSON(w http.ResponseWriter, status int, msg string) {
	b, _ := json.Marshal(struct {
		Error string `json:"error"`
	}{msg})
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(b)+1))
	h.Del("Content-Encoding")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
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
