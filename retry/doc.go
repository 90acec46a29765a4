// Package retry is an [net/http.RoundTripper] that retries the transient
// failures of calls to an inference gateway within the request's time
// budget.
//
// # The model
//
// A request is sent up to [Policy.MaxAttempts] times (5 by default). After a
// failed attempt the transport decides whether to try again, and waits
// before it does:
//
//   - A response is retried when its status is 502 or 503, or 429 with a
//     server hint (Retry-After or retry-after-ms), or one of
//     [Policy.Statuses] when the caller lists them, and
//     [streamguard.Classify] marks it retryable: a 502 "Error making
//     prediction" (the container crashed or restarted), a 503 from a
//     draining replica or the router, a 429 from the platform's rate
//     limiter that says when to come back. A 429 without a hint is not
//     retried by default: nothing says when capacity returns, and retrying
//     blindly adds to the load that was refused. A 502 "client closed
//     connection" is never retried: it reports the client's own
//     disconnection. A status the caller lists explicitly is retried even
//     where Classify says otherwise, so that Statuses: []int{429, 500, 502,
//     503, 504} follows the platform's own client guidance. Retried
//     statuses are retried for every method: the gateway answered.
//   - A connection failure with no response is retried when it is
//     transient. Dial errors (refused, unreachable, DNS timeouts), TLS
//     handshake failures, HTTP/2 REFUSED_STREAM, a GOAWAY that the server
//     sent before reading the request, and a reset or EOF before the
//     transport read any of an in-memory body (the *bytes.Reader,
//     *strings.Reader or *bytes.Buffer bodies http.NewRequest makes
//     replayable) never reached a server, and are retried for every
//     method. A reset, EOF or timeout after the body
//     may have reached a server, before any response, is retried only for
//     idempotent methods (GET, HEAD, OPTIONS, TRACE, PUT, DELETE), for a
//     request with an Idempotency-Key or X-Idempotency-Key header, or when
//     [Policy.RetryNonIdempotent] is set: a POST may already have run. A
//     certificate that does not verify, a server that does not speak TLS
//     and a name that does not exist are not retried, nor is any error this
//     package does not know to be transient.
//   - The wait comes from [Policy.Backoff], one schedule per request: by
//     default exponential from 1 s, doubling, capped at 30 s, with ±50 %
//     jitter ([DefaultBackoff]). A server's hint replaces it: retry-after-ms,
//     or Retry-After in seconds or as an HTTP-date ([RetryAfter]), capped
//     at [Policy.MaxRetryAfter] (30 s); a hint of 0 (or a date past) does
//     not, lest every client retry at once.
//   - The request's context bounds everything. Before each wait, a retry
//     that could not start [Policy.MinAttemptTime] (100 ms) before the
//     context's deadline is not made, and a hint longer than the time left
//     ends the retries at once: the last failure is returned, never after
//     the deadline, and never as a bare context.DeadlineExceeded. A wait
//     ends at once when the context is canceled.
//   - A [Throttle] shared by many requests stops all retries while the
//     servers keep failing (gRPC's retry throttling). [NewDefaultThrottle]
//     is the budget the middleware package's client stack gives each
//     client: a full outage costs 9 extra attempts in all, while a
//     service failing a few percent of its requests never notices it.
//
// Defaults at a glance: statuses 502 and 503, and 429 with a server hint;
// 5 attempts; waits of about 1, 2, 4 and 8 s (±50 %); hints capped at 30 s;
// 100 ms minimum attempt time; bodies up to 8 MiB buffered for replay; no
// throttle unless [Policy.Throttle] is set.
//
// # What a caller sees
//
// A 2xx, and every response whose status is not retried, is returned as soon
// as its headers arrive, untouched; a response whose body was handed to the caller
// is never replayed, so a stream that fails after its 200 is for the sse
// package to report. When the retries on a status are spent (attempts,
// schedule, budget or throttle), the last response is returned with a nil
// error and its body intact, as the RoundTripper contract requires;
// [streamguard.Check] classifies it, with Attempts set. When no response was
// obtained, RoundTrip returns a [*streamguard.Error]: SourceNetwork and
// ReasonConnection with the transport's error as Err; or, when the caller's
// context ended the first attempt, SourceClient (ReasonCanceled or
// ReasonTimeout), and SourcePlatform with ReasonTimeout when the context's
// cause is [streamguard.ErrBudgetExceeded]. Attempts says how many attempts
// were made and, when there was more than one, Elapsed the time from the
// start of the first attempt to the failure. If the caller's context ends
// after a real failure (during a wait, or during the attempt that follows),
// that failure is returned: the last response, with the part of its body
// read before the retry, or the last connection error.
//
// Each attempt's request is a shallow copy of the caller's with its own
// context, which carries the attempt's number (1 for the first try) for
// streamguard.Check and the tracing package (http.request.resend_count is
// that number minus one) and, for a retry, the start of the first attempt,
// from which Check measures the Elapsed of a failure returned as a
// response. The caller's request is never modified.
//
// # Bodies and connections
//
// A request body is replayed byte for byte: through Request.GetBody when it
// is set (http.NewRequest sets it for bytes, strings and their readers),
// otherwise from a copy read into memory before the first attempt when its
// length is known and at most [Policy.MaxBufferedBody] (8 MiB). A body of
// unknown length, or a larger one, is sent once, without retries. A failed
// response's body is drained (at most 64 KiB, [streamguard.MaxErrorBody])
// and closed before the wait, so that its connection is reused; the
// transport never closes idle connections itself.
//
// # Observing and steering retries
//
// The package is silent unless told otherwise: [Policy.OnRetry] is called
// before each wait with the [Attempt] that failed and the wait that follows,
// and [Policy.Logger] logs each retry and each final failure (the URL
// redacted, messages scrubbed, never a header). [Policy.CheckRetry] has the
// last word on each failed attempt after the built-in classification, and
// [Policy.BeforeRetry] may stop the retries before a wait; an error from
// either ends the request with an error that wraps it and the attempt's
// *streamguard.Error. [Policy.HeaderTimeout] bounds each attempt's wait for
// its response headers (never its body) and retries the attempts that
// outlive it ([ErrHeaderTimeout]).
//
// A RoundTripper from [NewTransport] and a [Throttle] are safe for
// concurrent use.
package retry
