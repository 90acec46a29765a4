// Package middleware composes streamguard's layers into the two stacks a
// service needs: a client for calling model endpoints, and a server handler
// for model servers and for services that relay streams.
//
// # The client
//
// NewClient returns an *http.Client whose transport is, outermost first:
//
//  1. the budget: a request without a deadline of its own gets the
//     platform's budget (SyncBudget, 1200 s, or AsyncBudget, 3600 s, on
//     /async_predict and /async_run_remote) plus DefaultGrace, so that the
//     gateway's own 504 arrives before the client gives up; a caller's shorter
//     deadline always wins. The time left goes to the server in the
//     Request-Timeout-Ms header. Bodies over the platform's limits (100 MiB,
//     or 256 KiB on async routes) fail before they are sent (once the cap
//     is sent for a body of unknown length);
//  2. retry: 502, 503, hinted 429s and connection failures with
//     exponential backoff inside the budget;
//  3. tracing: one CLIENT span per attempt, ended with the body;
//  4. the stream guard: a 2xx body that fails after its header returns a
//     *streamguard.Error from Read, never a clean io.EOF;
//  5. the base transport, tuned for the gateway (DefaultBase).
//
// The client has no wall-clock Timeout: it would kill healthy long streams.
//
// Errors travel as the root package describes: a *streamguard.Error from Do
// when no response was obtained (errors.As finds it through *url.Error), an
// error status as a response to classify with streamguard.Check (or, with
// Config.ErrorStatus, as an error), and a failure after the 2xx from the
// body's Read.
//
// # The server
//
// NewHandler wraps a handler in a SERVER span, a budget (a smaller incoming
// Request-Timeout-Ms wins), a body cap, panic recovery, draining and an SSE
// heartbeat: the layers Timeout, LimitRequestBody, Recoverer, Drain and
// Heartbeat, each usable alone, as the client stack's Credentials,
// LimitBody, Deadline and FinalErrors are. Before the header, every failure is the platform's JSON
// {"error": "..."}; after a 2xx event-stream header it is one "event: error"
// frame and a clean end (not in a stream with a Content-Length or a content
// coding, which cannot take it); after any other header the response is
// aborted, so the client sees a truncated body and not a success.
// WriteError reports a handler's own failures the same way, keeping the
// header fields the handler set (a relay's Retry-After).
//
// A relay (a handler that calls a model through NewClient and streams the
// answer to its own client) therefore carries an upstream cut to its client
// as a failure frame whose source and reason survive the hop.
package middleware
