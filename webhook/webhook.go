package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/streamguard/streamguard"
	"github.com/streamguard/streamguard/internal/redact"
)

// DefaultMaxBody is the receiver's default cap on a webhook body: 1 MiB. The
// body is the model's output wrapped in the result envelope; the platform
// caps an async request's input at 256 KiB (streamguard.AsyncMaxBody) but
// not, in its documentation, the output. Raise Config.MaxBody for a model
// whose output is larger: a body over the cap gets 413, which the platform
// does not retry, and it keeps no copy of the output.
const DefaultMaxBody = 1 << 20

// Func handles one verified async result. errs is
// streamguard.ClassifyAsync(result): nil when the prediction succeeded and
// result.Data holds the model's output, else one *streamguard.Error per
// entry of the result's errors array.
//
// Returning nil acknowledges the result: the receiver answers 200 and the
// platform will not send it again. Returning an error, or panicking,
// answers 500, which the platform retries. The platform may deliver a
// result more than once (a retry after an acknowledgement that was lost),
// so make Func idempotent, keyed by result.RequestID. ctx is the webhook
// request's context: it ends when the platform hangs up.
type Func func(ctx context.Context, result *streamguard.AsyncResult, errs []*streamguard.Error) error

// Config configures a receiver. The zero value is ready to use: a 1 MiB body
// cap and no logging.
type Config struct {
	// MaxBody caps the webhook body; a larger one gets 413 and Func is not
	// called. Zero means DefaultMaxBody (1 MiB); negative (or
	// math.MaxInt64) means no cap, as middleware.Config.MaxBody does (the whole body is then held in
	// memory to check its signature, however large).
	MaxBody int64

	// MaxAge, if set, refuses a result whose time is older than MaxAge, or
	// more than a minute ahead of this clock, or missing, with 401 before
	// Func is called: a captured delivery replayed later is turned away,
	// not only deduplicated by Func. Zero means no check: the platform may
	// retry a delivery long after its result (set MaxAge above its retry
	// window), and Func must be idempotent anyway.
	MaxAge time.Duration

	// Logger, if set, receives one record per rejected webhook (Warn:
	// method, path, remote address and the reason) and per Func error or
	// panic (Error: the request ID and the error, or the panic's value and
	// stack, scrubbed of key shapes and the request's credentials).
	// Secrets, signatures and bodies are never logged. Nil means silent.
	Logger *slog.Logger
}

// maxBody is the cap in force: -1 for none (math.MaxInt64 is none too:
// the reader's limit, one past the cap, would overflow).
func (c Config) maxBody() int64 {
	switch {
	case c.MaxBody == math.MaxInt64:
		return -1
	case c.MaxBody > 0:
		return c.MaxBody
	case c.MaxBody < 0:
		return -1
	}
	return DefaultMaxBody
}

// NewHandler returns the receiver: an http.Handler for the webhook endpoint
// of async requests that verifies each POST's SignatureHeader against
// secrets, decodes the streamguard.AsyncResult, and calls fn with it and its
// typed errors. During a secret rotation pass both the old and the new
// secret: a webhook signed with either is accepted.
//
// It answers, always with a JSON body ({"error": "..."} on failure):
//
//   - 405 for a method other than POST;
//   - 401 for a missing or wrong signature, or with Config.MaxAge a result
//     too old, and fn is not called;
//   - 413 for a body over Config.MaxBody;
//   - 400 for a body that is not an async result (not JSON, or without a
//     request_id);
//   - 500 when fn returns an error (the platform retries 500, 502, 503 and
//     504);
//   - 200 only after fn has returned nil.
//
// NewHandler panics when secrets is empty, when one of them is the empty
// string (an HMAC under an empty key proves nothing; an unset environment
// variable is the usual cause), or when fn is nil. The handler is safe for
// concurrent use; it calls fn concurrently for concurrent webhooks.
func NewHandler(secrets []string, fn Func, cfg Config) http.Handler {
	if len(secrets) == 0 {
		panic("webhook: NewHandler without a secret")
	}
	for _, s := range secrets {
		if s == "" {
			panic("webhook: NewHandler with an empty secret")
		}
	}
	if fn == nil {
		panic("webhook: NewHandler with a nil Func")
	}
	return &receiver{keys: keys(secrets), fn: fn, maxBody: cfg.maxBody(), maxAge: cfg.MaxAge, log: cfg.Logger}
}

type receiver struct {
	keys    [][]byte
	fn      Func
	maxBody int64
	maxAge  time.Duration
	log     *slog.Logger
}

// maxSkew is how far ahead of the receiver's clock a result's time may be
// under Config.MaxAge.
const maxSkew = time.Minute

// fresh reports whether result's time is within h.maxAge of now (always,
// without a MaxAge).
func (h *receiver) fresh(result *streamguard.AsyncResult, now time.Time) bool {
	if h.maxAge <= 0 {
		return true
	}
	at, err := time.Parse(time.RFC3339Nano, result.Time)
	return err == nil && now.Sub(at) <= h.maxAge && at.Sub(now) <= maxSkew
}

// errNotResult is the answer to a body that is valid JSON but no result.
var errNotResult = errors.New("no request_id")

func (h *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		h.reject(w, r, http.StatusMethodNotAllowed, "method not allowed: the webhook accepts POST")
		return
	}
	// Reject a request without any signature before reading its body.
	sigs := parseSignatures(strings.Join(r.Header.Values(SignatureHeader), ","))
	if len(sigs) == 0 {
		h.reject(w, r, http.StatusUnauthorized, "missing webhook signature")
		return
	}
	capped := h.maxBody >= 0
	if capped && r.ContentLength > h.maxBody {
		h.reject(w, r, http.StatusRequestEntityTooLarge, tooLarge(r.ContentLength, h.maxBody, false))
		return
	}
	var src io.Reader = r.Body
	if capped {
		src = io.LimitReader(r.Body, h.maxBody+1)
	}
	body, err := io.ReadAll(src)
	if mbe := (*http.MaxBytesError)(nil); errors.As(err, &mbe) {
		// A server's own cap (http.MaxBytesReader, NewHandler's
		// MaxBodyBytes) smaller than ours: the same refusal, not retried.
		h.reject(w, r, http.StatusRequestEntityTooLarge, tooLarge(int64(len(body)), mbe.Limit, true))
		return
	}
	if err != nil {
		h.reject(w, r, http.StatusBadRequest, "reading the webhook body: "+err.Error())
		return
	}
	if capped && int64(len(body)) > h.maxBody {
		h.reject(w, r, http.StatusRequestEntityTooLarge, tooLarge(int64(len(body)), h.maxBody, true))
		return
	}
	if !verify(body, sigs, h.keys) {
		h.reject(w, r, http.StatusUnauthorized, "invalid webhook signature")
		return
	}
	var result streamguard.AsyncResult
	if err := json.Unmarshal(body, &result); err != nil || result.RequestID == "" {
		if err == nil {
			err = errNotResult
		}
		h.reject(w, r, http.StatusBadRequest, "the body is not an async result: "+err.Error())
		return
	}
	if !h.fresh(&result, time.Now()) {
		h.reject(w, r, http.StatusUnauthorized, "stale webhook: its time is outside the receiver's MaxAge (a replay?)")
		return
	}
	if stack, err := h.call(r.Context(), &result); err != nil {
		if h.log != nil {
			// Func's words may quote a key or hold line ends: sanitized
			// (a tab or line end after "Bearer" made a space, so that the
			// scrub finds the token), scrubbed of key shapes and the
			// request's credentials, as the library's errors are. A
			// password in a URL of its own (a database's) is Func's to
			// keep out.
			attrs := []any{"request_id", streamguard.Sanitize(result.RequestID, 128),
				"error", streamguard.Sanitize(redact.Request(streamguard.Sanitize(err.Error(), 0), r), streamguard.MaxMessage)}
			if stack != nil {
				attrs = append(attrs, "stack", string(stack))
			}
			h.log.Error("streamguard: webhook: handling the async result failed", attrs...)
		}
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": "handling the async result failed"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{})
}

// call calls Func. A panic in it is its failure, answered 500 so that the
// platform retries (a connection dropped without an answer may not be):
// its value is the error, and its stack is returned; http.ErrAbortHandler goes on as
// net/http means it.
func (h *receiver) call(ctx context.Context, result *streamguard.AsyncResult) (stack []byte, err error) {
	defer func() {
		if p := recover(); p != nil {
			if p == http.ErrAbortHandler {
				panic(p)
			}
			err, stack = fmt.Errorf("panic: %v", p), debug.Stack()
		}
	}()
	return nil, h.fn(ctx, result, streamguard.ClassifyAsync(result))
}

// reject answers status with {"error": msg} and logs the rejection.
func (h *receiver) reject(w http.ResponseWriter, r *http.Request, status int, msg string) {
	if h.log != nil {
		h.log.Warn("streamguard: webhook rejected", "status", status, "method", r.Method,
			"path", r.URL.Path, "remote", r.RemoteAddr, "reason", msg)
	}
	writeJSON(w, status, map[string]string{"error": msg})
}

// tooLarge is the 413 message, in the platform's words.
func tooLarge(size, limit int64, atLeast bool) string {
	msg := "payload size of "
	if atLeast {
		msg += "at least "
	}
	return msg + strconv.FormatInt(size, 10) + " bytes exceeds maximum size of " + strconv.FormatInt(limit, 10) + " bytes"
}

func writeJSON(w http.ResponseWriter, status int, v map[string]string) {
	b, _ := json.Marshal(v)
	b = append(b, '\n')
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	w.Write(b)
}
