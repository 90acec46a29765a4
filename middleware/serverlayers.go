package middleware

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"runtime/debug"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/streamguard/streamguard"
	"github.com/streamguard/streamguard/internal/redact"
	"github.com/streamguard/streamguard/tracing"
	"go.opentelemetry.io/otel/trace"
)

// The server stack's layers, each usable alone around any handler (as chi
// ships Recoverer, Timeout and RequestSize): NewHandler composes all of them.
// The layers that must end a response that has started (Timeout,
// Recoverer, LimitRequestBody, Heartbeat) share one stream writer per
// request, made by the outermost of them: it serialises the handler's
// writes with the heartbeat and the budget's expiry, and follows the SSE
// framing so that a failure frame lands only between events.

// Drain answers 503 with DrainMessage and Retry-After (cfg.DrainRetryAfter,
// 1 s by default) to every request once cfg.Drain is closed; requests in
// flight run on.
func Drain(cfg ServerConfig) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
			select {
			case <-cfg.Drain:
			default:
				next.ServeHTTP(rw, r)
				return
			}
			ra := cfg.DrainRetryAfter
			if ra <= 0 {
				ra = time.Second
			}
			rw.Header().Set("Retry-After", strconv.Itoa(int(max(1, (ra+time.Second-1)/time.Second))))
			writeJSON(rw, http.StatusServiceUnavailable, DrainMessage)
		})
	}
}

// LimitRequestBody caps the request body at cfg.MaxBodyBytes (100 MiB by
// default; negative: no cap): a declared length over it is answered 413
// before the handler runs, in the platform's words; a body that turns out
// longer fails the handler's Read and, if the handler has not answered yet,
// is answered 413.
func LimitRequestBody(cfg ServerConfig) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
			limit := cfg.maxBody()
			if limit < 0 || r.Body == nil || r.Body == http.NoBody {
				next.ServeHTTP(rw, r)
				return
			}
			span := trace.SpanFromContext(r.Context())
			if r.ContentLength > limit {
				err := TooLarge(r.ContentLength, limit, false)
				tracing.Annotate(span, err)
				writeJSON(rw, http.StatusRequestEntityTooLarge, err.Message)
				return
			}
			w, r, done := streamWriter(rw, r)
			defer done()
			body := &countingBody{ReadCloser: http.MaxBytesReader(innermost(rw), r.Body, limit), limit: limit}
			r2 := r.WithContext(r.Context())
			r2.Body = body
			defer keepPattern(r, r2)
			defer func() {
				if body.over() {
					if err := TooLarge(body.read(), limit, true); w.end(http.StatusRequestEntityTooLarge, err, true) {
						tracing.Annotate(span, err)
					}
				}
			}()
			next.ServeHTTP(w, r2)
		})
	}
}

// writeGrace is how long past the budget a write may take: the budget's
// own 504 or failure frame gets out first.
const writeGrace = 5 * time.Second

// Timeout bounds each request by cfg.Budget (1200 s by default), or by a
// smaller Request-Timeout-Ms the client sent: the handler's context ends
// with streamguard.ErrBudgetExceeded, and the response ends as NewHandler
// says (504 before the header, a failure frame or an abort after it).
func Timeout(cfg ServerConfig) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
			w, r, done := streamWriter(rw, r)
			defer done()
			budget := cfg.budget(r)
			deadline := time.Now().Add(budget)
			ctx, cancel := context.WithDeadlineCause(r.Context(), deadline, streamguard.ErrBudgetExceeded)
			defer cancel()
			// The write deadline lets the budget's own 504 or failure frame
			// out first, and then fails a write stuck on a client that
			// stopped reading.
			_ = http.NewResponseController(rw).SetWriteDeadline(deadline.Add(writeGrace))
			// The budget ends the response when it expires, while the
			// handler runs, and again (to no effect if done) when the
			// handler returns: the handler may see its context end and
			// return before the callback runs. A callback under way is
			// waited for: the failure event it writes (through a resume's
			// hook, outside the writer's lock) is out before the layer
			// returns.
			r2 := r.WithContext(ctx)
			body := watchBody(r2)
			// Its expiry also ends a read of the request's body (a client
			// uploading slowly), which a handler blocked in it cannot see.
			// Only while the body is unfinished: once it is, HTTP/1's
			// server reads the connection to see the client leave, and a
			// deadline there would end the request's context as if it had.
			expire := func() {
				if errors.Is(context.Cause(ctx), streamguard.ErrBudgetExceeded) {
					endBudget(cfg, w, r, budget)
					if body != nil && !body.finished.Load() {
						_ = http.NewResponseController(rw).SetReadDeadline(time.Now())
					}
				}
			}
			expired := make(chan struct{})
			stop := context.AfterFunc(ctx, func() { defer close(expired); expire() })
			defer func() {
				if !stop() {
					<-expired
				}
			}()
			defer expire()
			defer keepPattern(r, r2)
			next.ServeHTTP(w, r2)
		})
	}
}

// watchedBody is a request body that knows when it is finished: read to
// its end or to a failure, or closed.
type watchedBody struct {
	io.ReadCloser
	finished atomic.Bool
}

// watchBody puts a watchedBody in place of r's body and returns it; nil
// when r has none.
func watchBody(r *http.Request) *watchedBody {
	if r.Body == nil || r.Body == http.NoBody {
		return nil
	}
	b := &watchedBody{ReadCloser: r.Body}
	r.Body = b
	return b
}

func (b *watchedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil {
		b.finished.Store(true)
	}
	return n, err
}

// Close closes the body; it is finished once Close returns: HTTP/1's
// Close reads what is left of the body (256 KiB at most), which a client
// may trickle as slowly as the handler's reads.
func (b *watchedBody) Close() error {
	err := b.ReadCloser.Close()
	b.finished.Store(true)
	return err
}

// endBudget ends the response to r because its budget expired: the 504,
// or the failure event after the header.
func endBudget(cfg ServerConfig, w *writer, r *http.Request, budget time.Duration) {
	err := &streamguard.Error{Source: streamguard.SourcePlatform, Reason: streamguard.ReasonTimeout,
		Message: "request budget of " + budget.String() + " exceeded", Err: streamguard.ErrBudgetExceeded}
	if w.end(http.StatusGatewayTimeout, err, false) {
		tracing.Annotate(trace.SpanFromContext(r.Context()), err)
		cfg.log(r, "request budget exceeded", err)
	}
}

// Recoverer turns a panic in the handler into the model's internal error,
// logged with its stack to cfg.Logger and answered as NewHandler says; the
// handler's own panic(http.ErrAbortHandler) is passed on.
func Recoverer(cfg ServerConfig) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
			w, r, done := streamWriter(rw, r)
			defer done()
			defer func() {
				p := recover()
				switch p {
				case nil:
					return
				case http.ErrAbortHandler:
					w.close()
					panic(p) // the handler's own abort
				}
				if cfg.Logger != nil {
					// The panic's value may quote the request's credentials
					// ("no account for key ..."): nothing logged holds one.
					cfg.Logger.Error("streamguard: handler panic", "method", r.Method, "path", r.URL.Path,
						"panic", redact.Request(fmt.Sprint(p), r), "stack", string(debug.Stack()))
				}
				endPanic(w, r)
			}()
			next.ServeHTTP(w, r)
		})
	}
}

// endPanic ends the response to r because its handler panicked: the
// model's internal error, as a 500 or a failure event.
func endPanic(w *writer, r *http.Request) {
	err := &streamguard.Error{Source: streamguard.SourceModel, Reason: streamguard.ReasonModelError,
		Message: "internal server error"}
	if w.end(http.StatusInternalServerError, err, false) {
		tracing.Annotate(trace.SpanFromContext(r.Context()), err)
	}
}

// Heartbeat writes an SSE comment on a text/event-stream response idle for
// cfg.Heartbeat (see ServerConfig.Heartbeat); zero means no layer at all.
func Heartbeat(cfg ServerConfig) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		if cfg.Heartbeat <= 0 {
			return next
		}
		return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
			w, r, done := streamWriter(rw, r)
			defer done()
			w.setHeartbeat(cfg.Heartbeat)
			next.ServeHTTP(w, r)
		})
	}
}

// streamWriter returns the stream writer of an outer layer beneath rw, or
// makes one, with a request whose context ends when a write to the client
// fails. done, to be deferred, finishes the writer when it was made here:
// from then on nothing writes, and a response that must be aborted is.
func streamWriter(rw http.ResponseWriter, r *http.Request) (*writer, *http.Request, func()) {
	if w := findWriter(rw); w != nil {
		return w, r, func() {}
	}
	ctx, cancel := context.WithCancelCause(r.Context())
	w := &writer{rw: rw, out: record{rw: rw}, header: newHandlerHeader(rw), cancel: cancel, head: r.Method == http.MethodHead, clen: -1}
	r2 := r.WithContext(ctx)
	return w, r2, func() {
		keepPattern(r, r2)
		cancel(nil)
		if w.close() {
			panic(http.ErrAbortHandler)
		}
	}
}

// keepPattern gives r the route a ServeMux below set on r2, its copy: the
// tracing layer reads it from the request it saw when it ends the span.
func keepPattern(r, r2 *http.Request) { r.Pattern = r2.Pattern }
