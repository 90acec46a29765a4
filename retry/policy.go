package retry

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/cenkalti/backoff/v4"
)

// The defaults a zero Policy stands for.
const (
	// DefaultMaxAttempts is how many times a request is sent in all, the
	// first try included: 5, as in the platform's own client guidance.
	DefaultMaxAttempts = 5

	// DefaultMaxRetryAfter caps a server's Retry-After or retry-after-ms
	// hint: 30 s, the longest step of the default schedule. A longer hint
	// is cut to it, unless it runs past the request's deadline: then the
	// retries end at once, with the response that sent it.
	DefaultMaxRetryAfter = 30 * time.Second

	// DefaultMaxBufferedBody is the largest request body without GetBody
	// that is read into memory so that it can be sent again: 8 MiB, enough
	// for any chat or embedding request and far under the platform's 100 MiB
	// edge cap, small enough that a burst of concurrent requests cannot
	// exhaust memory.
	DefaultMaxBufferedBody = 8 << 20

	// DefaultMinAttemptTime is the time an attempt must have left before the
	// request's deadline for it to be worth starting: 100 ms, about a TLS
	// handshake to a nearby gateway. A retry that would begin later than this
	// before the deadline is not made; the last failure is returned instead.
	DefaultMinAttemptTime = 100 * time.Millisecond
)

// DefaultBackoff returns the default schedule, a new one on every call:
// exponential from 1 s, doubling, each step capped at 30 s, with ±50 %
// jitter, built with [backoff.NewExponentialBackOff]. With the default 5
// attempts the four waits are about 1 s, 2 s, 4 s and 8 s (each between half
// and one and a half times that). It has no elapsed-time limit of its own:
// the request's context deadline is the budget.
//
// It is a func() backoff.BackOff, so it can be assigned to
// [Policy.Backoff] or wrapped: func() backoff.BackOff { return
// backoff.WithMaxRetries(retry.DefaultBackoff(), 2) }.
func DefaultBackoff() backoff.BackOff {
	return backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(time.Second),
		backoff.WithMultiplier(2),
		backoff.WithMaxInterval(30*time.Second),
		backoff.WithRandomizationFactor(0.5),
		backoff.WithMaxElapsedTime(0),
	)
}

// Policy says which failures are retried, how often and how far apart. Its
// zero value retries 502 and 503, 429 when the server says when to come
// back, and connection failures, up to 5 attempts on the default schedule,
// bounded by the request's deadline, with no [Throttle]. A Policy is copied
// by [NewTransport]; changing it afterwards has no effect.
type Policy struct {
	// Statuses are the response statuses that are retried.
	//
	// Nil means 502 and 503, and 429 when the response carries a server
	// hint (Retry-After in seconds or as an HTTP-date, or retry-after-ms;
	// see [RetryAfter]), each only when [streamguard.Classify] marks the
	// response retryable: a 502 or 503 that the model's own code raised
	// (X-Baseten-Error-Source) is the model's answer and is returned, and
	// so is a 429 whose body says the quota is spent (insufficient_quota).
	// A retried 429 waits for its hint, capped by MaxRetryAfter; a hint
	// longer than the time left before the deadline returns the 429 at
	// once. A 429 without a hint is returned at once: nothing says when
	// capacity comes back, and blind retries only add to the load that
	// rate-limited it. The platform throttles with 429 and Retry-After, and
	// OpenAI's clients retry 429 too. With MaxRetryAfter negative (hints
	// ignored) a 429 is not retried by default.
	//
	// A non-nil slice replaces the set, and a status listed in it
	// is retried even when Classify calls it not retryable: the platform's
	// own client guidance retries []int{429, 500, 502, 503, 504}; 504 means
	// the whole 1200 s budget was spent, so list it only for short requests.
	// An empty non-nil slice retries no status, only connection failures.
	//
	// A response the platform attributes to the client itself (502 "client
	// closed connection", 499) is never retried, listed or not.
	Statuses []int

	// MaxAttempts is how many times a request is sent in all, the first try
	// included. Zero means DefaultMaxAttempts (5); 1 or a negative value
	// means the request is sent once.
	MaxAttempts int

	// Backoff returns a new schedule for one logical request; it is called
	// at most once per request, at its first retry, and the schedule is Reset
	// before use. A BackOff is not safe for concurrent use, so Backoff must
	// not return one it has handed out before. A schedule that returns
	// backoff.Stop ends the retries. Nil means DefaultBackoff. Build
	// exponential schedules with backoff.NewExponentialBackOff, never a
	// struct literal: one without Stop set never stops.
	Backoff func() backoff.BackOff

	// MaxRetryAfter caps a server's hint. A response's retry-after-ms or
	// Retry-After (seconds or HTTP-date) replaces the computed wait, up to
	// MaxRetryAfter, unless it is 0 (a date past included): that is the
	// computed wait, jittered, not an instant retry; a hint longer than the time left before the request's
	// deadline ends the retries at once. Zero means DefaultMaxRetryAfter
	// (30 s); a negative value ignores hints.
	MaxRetryAfter time.Duration

	// Throttle, if set, is a retry budget shared by every request made with
	// it: when the servers keep failing, retries stop for all of them. Nil
	// means no throttle. See [Throttle]; [NewDefaultThrottle] returns the
	// budget the middleware package's client stack gives each client.
	Throttle *Throttle

	// OnRetry, if set, is called before each wait with the attempt that
	// failed and the wait that follows, after BeforeRetry let the retry
	// go ahead. It may be called concurrently from different requests and
	// must not block.
	OnRetry func(Attempt)

	// RetryNonIdempotent also retries a request that is neither idempotent
	// nor carries an Idempotency-Key or X-Idempotency-Key header after a
	// failure that may have reached the server: a reset, an EOF or a
	// timeout after its body was sent, before any response. False (the
	// default) returns such failures, since a POST may already have run.
	// Failures that certainly never reached a server (dial, TLS handshake,
	// HTTP/2 REFUSED_STREAM or an unprocessed GOAWAY, a reset before the
	// transport read any of an in-memory body) and retried statuses are
	// retried for every method.
	RetryNonIdempotent bool

	// MaxBufferedBody is the largest request body that is read into memory
	// to be replayed when the request has no GetBody. It applies to bodies
	// of known length; a body of unknown length (ContentLength 0 with a
	// non-nil Body) or a larger one is sent once, without retries. Zero
	// means DefaultMaxBufferedBody (8 MiB); a negative value never buffers.
	MaxBufferedBody int64

	// MinAttemptTime is the least time before the deadline a retry must
	// have left after its wait; otherwise it is not made. Zero means
	// DefaultMinAttemptTime (100 ms); a negative value means none.
	MinAttemptTime time.Duration

	// CheckRetry, if set, has the last word on whether a failed attempt is
	// retried, as go-retryablehttp's CheckRetry has: it is called after
	// the built-in classification of every attempt that obtained a status
	// of 400 or more (resp, err nil) or no response (resp nil, err the
	// *streamguard.Error), with retry what the policy decided; it returns
	// whether to retry. Use it to retry the 500s of one route, or to refuse
	// retries on another. A non-nil error stops the request at once: the
	// response's body is closed and RoundTrip returns an error that wraps
	// the hook's error and the attempt's *streamguard.Error (errors.Is and
	// errors.As find both). It is not called for a response under 400, nor
	// when the caller's context has ended. Its true cannot make a request
	// go past MaxAttempts, the Throttle, the deadline or a body that cannot
	// be replayed, and a true for a non-idempotent request after a failure
	// that may have reached the server sends it again: that is the hook's
	// decision. It may inspect resp.Body only through streamguard.Check,
	// which leaves it readable, and must not close it. Nil keeps the
	// policy's decision. It may be called concurrently.
	CheckRetry func(ctx context.Context, resp *http.Response, err error, retry bool) (bool, error)

	// BeforeRetry, if set, is called before each wait, before OnRetry, with
	// the attempt that failed and the wait that follows. A non-nil error
	// stops the retries: nothing more is sent, the failed response's body
	// is closed, and RoundTrip returns an error that wraps the hook's error
	// and the attempt's *streamguard.Error, with its Attempts. Nil means no
	// hook. It may be called concurrently and must not block for long.
	BeforeRetry func(Attempt) error

	// HeaderTimeout bounds each attempt's wait for its response headers,
	// separately from the request's deadline, as openai-go's per-request
	// timeout does: an attempt whose headers have not arrived after
	// HeaderTimeout is abandoned (its connection closed) and fails with
	// SourcePlatform, ReasonTimeout and [ErrHeaderTimeout]; it is retried,
	// whatever the method, when attempts, throttle and deadline allow, since
	// the caller who sets a header timeout asks for slow attempts to be sent
	// again (a server may still be running the abandoned one). It never
	// bounds the body: once the headers arrive, a stream may last as long as
	// the deadline allows. Zero or negative means none: an attempt waits for
	// its headers as long as the request's context allows.
	HeaderTimeout time.Duration

	// Logger, if set, logs each retry at level Warn and each final failure
	// at level Error: an error status returned after the retries, a request
	// that obtained no response, and a stream that failed after its 2xx
	// (the caller's own cancellation is not logged). Each record carries the
	// method, the URL with its userinfo and every query value replaced by
	// REDACTED, the attempt, the wait, the status, the source and reason,
	// and the error's one line scrubbed of the request's credentials; never
	// a header. Nil means silent.
	Logger *slog.Logger
}

// Attempt describes a failed attempt, passed to [Policy.BeforeRetry] and
// [Policy.OnRetry] before the wait that precedes the next one.
type Attempt struct {
	// N is the number of the attempt that failed: 1 for the first try.
	// The next attempt is N+1.
	N int
	// StatusCode is the failed attempt's status, or 0 when it obtained no
	// response.
	StatusCode int
	// Err is the failure as a *streamguard.Error: the classified status
	// when there was a response, the connection failure when there was not.
	// Its Elapsed is zero, so that its hint is that of one failed attempt,
	// not of a request whose retries are spent.
	Err error
	// Delay is the wait before the next attempt.
	Delay time.Duration
	// Request is the caller's request, for a hook that decides by route;
	// it must not be modified.
	Request *http.Request
}
