// Package sse guards streaming responses against the failures that the
// common Go SSE consumers miss or cannot attribute.
//
// A streaming inference response starts with 200 and an open connection.
// When the model crashes, the gateway's timeout fires, or a connection is
// reset, the stream stops. Measured without the guard (integration's
// TestPeerUnguarded), go-sse's Read, openai-go (chat and Responses),
// go-openai and anthropic-sdk-go all report a cut in the middle of an event
// as an error (io.ErrUnexpectedEOF over HTTP/1.1, a stream reset over
// HTTP/2), though none says whose fault it was. What they miss: a stream
// that ends cleanly without its dialect's terminal event ends as success in
// all of them; a stalled stream hangs until the caller's own deadline; and
// an in-band error event is an ordinary event to go-sse and to openai-go's
// Responses stream. The guard sits on the response body, below all of them,
// and makes the body's Read return a *streamguard.Error, naming the source
// and the reason, instead of io.EOF or a bare transport error, so that every
// consumer built on the body surfaces the failure: openai-go's stream reports
// it from Err(), go-sse's Read yields it after the last whole event.
//
// # What the guard judges
//
// For a text/event-stream body the guard follows the event framing byte by
// byte (LF, CRLF and lone CR line ends, a CR split across reads, a leading
// BOM, comments) and hands the reader whole events only: an incomplete
// trailing event is held back until its blank line arrives, so a cut stream
// never hands a consumer half an event, and a failure frame appended to it can
// never merge into one.
//
// Each body ends with exactly one verdict (see Guard for the order): success,
// model_error for an error event inside the stream, stalled, canceled,
// truncated or event_too_large. The streaming APIs it knows without
// configuration are OpenAI chat/completions (data: [DONE]), OpenAI Responses
// (response.completed, response.incomplete, response.failed), Anthropic
// Messages (message_stop), and vLLM and TGI, which send an error event and
// then [DONE]. A stream of a known dialect that ends without its terminal
// event is truncated even when its transport ended cleanly; a stream of no
// known dialect (raw Truss output, a custom server) has no sentinel, and only
// transport and framing failures are detectable there. Add your own with
// Config.Dialects.
//
// JSON streams get the same treatment. A JSON-lines body
// (application/x-ndjson, application/jsonl, application/json-seq, ...) is
// framed by line and handed out whole lines only; Ollama's stream (/api/chat,
// /api/generate) must end with its "done": true record, and an
// {"error": ...} line is an in-band error; JSON lines of no known dialect
// are judged by transport and framing alone. A streamed JSON array (Gemini's
// streamGenerateContent without alt=sse) is framed by element and must end
// with its ']'. With Config.FailureEvent, a failed JSON stream ends with a
// failure record ({"error": "<line>", ...}, see AppendFailureRecord), or,
// for an array, a last error element and ']'.
//
// A body of another type (a raw chunked application/octet-stream) is passed
// through unchanged, and only its transport failures are judged. A
// close-delimited HTTP/1 body that stops early ends in a clean io.EOF: no
// client can tell it from a complete one.
//
// # Cost
//
// The guard reads straight into the caller's buffer and copies only the
// incomplete event it holds back; it allocates nothing per Read or per event
// in steady state. The idle timer is one runtime timer per stream that Read
// never resets: each Read stores a timestamp, and the timer re-arms itself.
//
// # Concurrency
//
// A guarded body is read by one goroutine, as any response body is. Close is
// idempotent and safe to call while another goroutine is blocked in Read:
// that Read returns the canceled verdict. NewTransport's RoundTripper is safe
// for concurrent use.
package sse
