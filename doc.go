// Package streamguard turns the failures of calls to model-inference
// endpoints into typed, attributable errors.
//
// A call to a model behind an inference gateway (Baseten, an OpenAI- or
// Anthropic-compatible server, vLLM, TGI) can fail in four places: the
// caller's own request or account, the platform in front of the model, the
// model's own code, or the network between them; and the caller itself may go
// away. The status code alone rarely says which. This package says it: every
// failure becomes an [*Error] with a [Source] (where it happened), a [Reason]
// (what happened), whether a retry can help, and a [Error.Hint] saying where
// to look next, taken from the platform's inference-error guide.
//
// The root package holds the error model and is standard library only:
//
//   - [Classify] maps a status code and error body to an [*Error]. It knows the
//     platform's own messages ("Error making prediction", "client closed
//     connection", draining), Baseten's error_code values, the OpenAI and
//     Anthropic error shapes, and a proxy's HTML error page.
//   - [Check] does the same for an [*http.Response] and leaves its body
//     readable from the first byte.
//   - [FromError] classifies an error from a round trip that obtained no
//     response (dial, TLS, reset, deadline, cancellation).
//   - [ClassifyEvent] classifies the payload of an error event inside a stream.
//   - [ClassifyAsync] turns the errors array of an async result (the body of
//     the platform's webhook, [AsyncResult]) into the same *Error values, and
//     [AsyncRequestID] reads the submit's answer.
//   - [SyncBudget], [AsyncBudget], [AsyncMaxBody] and [EdgeMaxBody] name the
//     platform's time and size limits.
//
// The subpackages build on it: sse guards streams against truncation and
// stalls, retry retries 502 and 503 within the request's time budget, tracing
// tags OpenTelemetry spans with the source and reason, and middleware
// composes them into a [net/http.Client] and a server handler; webhook
// verifies and decodes the platform's async result webhooks.
//
// # How errors travel
//
// When no response was obtained, a round trip returns an [*Error]; a
// [net/http.Client] wraps it in a [*url.Error] and [errors.As] finds it. An
// error status is returned as a response with a nil error, as the
// [net/http.RoundTripper] contract requires; [Check] classifies it. A failure
// after a 2xx while streaming is returned by the body's Read as an [*Error],
// never as a bare [io.EOF].
//
// All types and functions here are safe for concurrent use; an [*Error] is a
// plain value that nothing in this module mutates after returning it.
package streamguard
