// Package tracing puts calls to model-inference endpoints on OpenTelemetry
// spans that last as long as the stream and say where a failure happened.
//
// A streamed generation is one HTTP request whose response takes minutes and
// may fail after its 200. Generic HTTP instrumentation gets it wrong:
// otelhttp's client span ends at the body's first EOF, so a stream that
// stopped early without its terminal event is a success; a mid-stream failure
// is recorded by its Go type (*errors.errorString); its request duration
// metric stops at the headers; its server span loses panics; and its response
// writer swallows flush errors. This package fixes each: a span ends when the
// body is consumed, fails or is closed, and the stream guard beneath says
// whether the end was a real one; every failure carries
// streamguard.error.source (request, platform, model, network or client) and
// streamguard.error.reason (unreachable, truncated, stalled, model_error,
// canceled, ...) from a *streamguard.Error; a panic is recorded and
// continues; a flush error reaches the handler.
//
// # Client
//
// [NewTransport] starts one CLIENT span per attempt. In the client stack of
// the middleware package it sits between the retry layer (outside: each
// retry is its own span, with http.request.resend_count) and the sse stream
// guard (inside: the guard's body says how the stream ended):
//
//	retry.NewTransport(tracing.NewTransport(sse.NewTransport(base, sc), tc), policy)
//
// The span ends exactly once, when the body's Read returns io.EOF or an
// error, or when the body is closed, whichever comes first; a response with
// no body ends it at once. At its end it carries:
//
//   - streamguard.stream.verdict: "complete", "closed" (the reader closed
//     the body before its end: not a failure), or the failure's reason;
//   - streamguard.stream.bytes and streamguard.stream.time_to_first_byte
//     (seconds from the start of the span);
//   - from a guarded body (one implementing streamstat.Reporter):
//     streamguard.stream.events, streamguard.stream.time_to_first_event,
//     streamguard.stream.terminal and streamguard.stream.dialect.
//
// Without a guard, the layer still sees transport failures (a chunked body
// cut short, an HTTP/2 reset: reason truncated, source network) but not a
// stream that ends cleanly without its terminal event; put the guard inside.
//
// Each resume the guard tried (streamstat.Stats.Resumes) becomes an
// [EventResume] span event at the time it was sent, and the span's
// streamguard.stream.resumes counts them.
//
// error.type is set on every failure to its reason, the library's
// attribution, so that a back end that groups by error.type sees
// "truncated", "stalled", "rate_limited" or "unreachable" rather than a bare
// status code: an error status is classified with streamguard.Check (64 KiB
// of the body are read and put back) and gets its reason as error.type and
// status Error (the status code itself only for a status the library could
// not classify); a round trip that obtained no response gets its reason too
// ("connection", "timeout", ...). The caller's own cancellation is
// recorded as source client, reason canceled, without error.type and with
// the status left unset, as the semantic conventions ask: the caller went
// away, nothing upstream failed. The request budget's expiry
// (streamguard.ErrBudgetExceeded) is the platform's timeout, even over
// HTTP/2, whose transport drops the context's cause.
//
// # Server
//
// [NewHandler] runs a handler inside a SERVER span ended by a defer, so a
// panic is recorded (source model, reason model_error) before it continues.
// A client that goes away mid-stream is source client, reason canceled, not
// a server error; a stream that fails after its 200 keeps status code 200
// and carries error.type and the source. The handler's ResponseWriter keeps
// every optional method http.ResponseController uses.
//
// # Redaction
//
// No request or response header is recorded. url.full has its userinfo
// replaced by REDACTED:REDACTED and every query value by REDACTED (keys are
// kept); url.query on the server likewise. Status messages and exception
// events are scrubbed of the request's credential query values (by name,
// and any value of 16 bytes or more), userinfo and credential headers
// (Authorization, Api-Key, cookies, any *-Key), because a server may echo a
// rejected key in its error body. The URL path is recorded as it is: do not
// put credentials in paths.
//
// # Semantic conventions
//
// Spans and metrics follow the stable HTTP semantic conventions of semconv
// v1.43.0 (go.opentelemetry.io/otel/semconv/v1.43.0, the schema URL of the
// tracer and meter). Client spans carry http.request.method, url.full
// (redacted), server.address, server.port, http.response.status_code,
// http.request.resend_count (the retry layer's attempt number minus one),
// network.protocol.version and error.type; server spans http.request.method,
// url.path, url.query (redacted), url.scheme, server.address, server.port,
// client.address, user_agent.original, network.protocol.version, http.route
// and error.type. streamguard.error.source and streamguard.error.reason stand
// beside error.type on every failure.
//
// # GenAI semantic conventions
//
// A stream the guard recognised as a model call (an event stream of a
// built-in dialect: OpenAI chat, Responses, Anthropic) also gets the GenAI
// conventions of semconv v1.41.0 (go.opentelemetry.io/otel/semconv/v1.41.0
// and its genaiconv; v1.42.0 moved them out of the otel Go module): the
// span attributes gen_ai.operation.name, gen_ai.provider.name,
// gen_ai.request.model, gen_ai.response.id, gen_ai.response.model,
// gen_ai.response.finish_reasons, gen_ai.usage.input_tokens,
// gen_ai.usage.output_tokens and gen_ai.response.time_to_first_chunk, and
// the metrics [MetricGenAIDuration], [MetricGenAITokenUsage],
// [MetricGenAITimeToFirstChunk] and [MetricGenAITimePerOutputChunk] (a
// meter of schema v1.41.0). The request model is read from a body buffered
// for replay (Request.GetBody) of at most 64 KiB, from its first 4 KiB. The
// metrics record at most 100 distinct model names per transport, request and
// response models together, and any name after those as "_OTHER", so that a
// server (or, behind a relay, its users) naming a new model on every call
// cannot grow a series per call; spans carry the names as they came.
//
// # Metrics
//
// Metrics go to the global MeterProvider unless [Config.MeterProvider] says
// otherwise, as spans go to the global TracerProvider; [Config.NoMetrics]
// turns them off. The client records [MetricClientDuration] (semconv's
// http.client.request.duration, to the end of the stream, in seconds with the
// conventions' advisory buckets), [MetricClientTimeToFirstEvent],
// [MetricClientEvents], [MetricClientResumes] and [MetricClientFailures] (by
// source and reason); the server records [MetricServerDuration] (semconv's
// http.server.request.duration), [MetricServerTimeToFirstByte] and
// [MetricServerFailures]. The durations carry the conventions' attributes,
// error.type included; the others the method, server address and port (or
// scheme and route), never a URL.
//
// # Options otelhttp users know
//
// [Config.SpanNameFormatter] names spans (otelhttp.WithSpanNameFormatter),
// [Config.Filter] leaves requests untraced (otelhttp.WithFilter), and
// [Config.PublicEndpoint] and [Config.PublicEndpointFn] make a server span
// the root of a new trace linked to the incoming one
// (otelhttp.WithPublicEndpoint, WithPublicEndpointFn).
//
// # With otelhttp
//
// Use this package instead of otelhttp for inference traffic; using both
// gives two spans per request. If otelhttp is already in place:
//
//   - Client: wrap this transport inside otelhttp's,
//     otelhttp.NewTransport(tracing.NewTransport(base, cfg)). otelhttp's span
//     becomes the parent that ends early; this package's child span lasts
//     the stream and carries the failure, and its traceparent is the one
//     sent.
//   - Server: keep otelhttp.NewHandler and, in the handler, tag its span
//     with [Annotate](trace.SpanFromContext(r.Context()), err) when a
//     request fails; or replace it with NewHandler, which does this itself.
//   - Either side: Annotate tags any span, the caller's own included, with
//     the source and reason of a *streamguard.Error.
//
// # Concurrency
//
// The RoundTripper and the Handler are safe for concurrent use. A wrapped
// response body may be closed while another goroutine reads it; the span
// still ends once.
package tracing
