package middleware

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"

	"github.com/streamguard/streamguard"
	"github.com/streamguard/streamguard/internal/redact"
	"github.com/streamguard/streamguard/tracing"
	"go.opentelemetry.io/otel/trace"
)

// WriteError reports err to the client of a handler inside NewHandler. Before
// the header is written it answers JSON {"error": "..."} with the status of a
// *streamguard.Error (StatusFor), 413 for an *http.MaxBytesError, 504 for
// an expired budget or deadline, 499 for a cancellation, and 500 for any other
// error, which is the handler's own (source model, reason model_error), with
// the header fields the handler set, as http.Error keeps them (a relay's
// Retry-After and Retry-After-Ms, a request id), but those of the body it
// replaces: Content-Type, Content-Length, Content-Encoding, Content-Range,
// Transfer-Encoding, ETag, Last-Modified and the trailers. After
// a 2xx text/event-stream header, it writes one "event: error" frame and ends
// the stream cleanly; after a 2xx JSON-lines header (application/x-ndjson,
// application/jsonl, application/json-seq: sse.IsJSONLines), at a line
// boundary, it writes one failure record, {"error": "<message>", ...}
// (sse.AppendFailureRecord), which Ollama's client returns as its error, and
// ends the stream cleanly (json-seq's anywhere: its RS begins a record, and
// parsers drop one it cut short); after a whole response (a HEAD's answer,
// a 204 or 304, all of a declared Content-Length), nothing; after any
// other header, or inside a line, it
// marks the response to be aborted when the handler returns, so the client
// sees a truncated body. A stream with a Content-Length, or a
// Content-Encoding other than identity, counts as any other: no frame or
// record is written into it.
// Either way, later writes fail and the request's span is tagged with err.
// Call it once and return.
//
// WriteError is how a relay passes an upstream failure on, and a relay must
// never hand its own upstream credentials to its caller: every message it
// writes (an Error's Message, or its Err's text when Message is empty, its
// Code and RequestID) is scrubbed of r's credentials and of well-known key
// shapes (the upstream's echo of the relay's key was already removed when
// the client stack classified it). An upstream's 401, 402, 403 or 407 is the upstream
// refusing this service's own credentials or account, which its caller can do
// nothing about: it is answered 502, source platform, with a message that
// says so and none of the upstream's text. A handler that forwards its
// caller's own credentials, and wants the upstream's 401 passed through,
// writes that answer itself.
//
// Outside NewHandler, WriteError cannot know whether the header went out; it
// writes the JSON error.
func WriteError(w http.ResponseWriter, r *http.Request, err error) {
	if err == nil {
		return
	}
	mw := findWriter(w)
	if mw != nil && stopped(r) {
		// The handler's error is that of its work, which the server's
		// stop canceled.
		err = mw.endStopped()
		tracing.Annotate(trace.SpanFromContext(r.Context()), err.(*streamguard.Error))
		return
	}
	se := serverError(err, r)
	status := StatusFor(se)
	if r != nil {
		tracing.Annotate(trace.SpanFromContext(r.Context()), se)
	}
	if mw != nil {
		mw.endHandler(status, se)
		return
	}
	writeJSON(w, status, errorMessage(se))
}

// serverError classifies an error a handler reports, as a copy whose
// Message (Err's text when it has none), Code and RequestID hold none of r's
// credentials: a *streamguard.Error as it is (an upstream failure
// a relay passes on), except an upstream's refusal of this service's own
// credentials (see WriteError); a body over the cap as payload_too_large; the
// budget's or a deadline's expiry as the platform's timeout; a cancellation as
// the client's; anything else as the handler's own failure: source model,
// reason model_error.
func serverError(err error, r *http.Request) *streamguard.Error {
	var se *streamguard.Error
	var mbe *http.MaxBytesError
	var e streamguard.Error
	switch {
	case errors.As(err, &se):
		e = *se
		if refusedCredentials(se.StatusCode) {
			e = streamguard.Error{Source: streamguard.SourcePlatform, Reason: streamguard.ReasonUnauthorized,
				StatusCode: http.StatusBadGateway, RequestID: se.RequestID, Err: se,
				Message: "the upstream refused this service's credentials (" + strconv.Itoa(se.StatusCode) + ")"}
		}
	case errors.As(err, &mbe):
		return TooLarge(mbe.Limit+1, mbe.Limit, true)
	case errors.Is(err, streamguard.ErrBudgetExceeded), errors.Is(err, context.DeadlineExceeded):
		e = streamguard.Error{Source: streamguard.SourcePlatform, Reason: streamguard.ReasonTimeout, Message: err.Error(), Err: err}
	case errors.Is(err, context.Canceled):
		e = streamguard.Error{Source: streamguard.SourceClient, Reason: streamguard.ReasonCanceled, Message: err.Error(), Err: err}
	default:
		e = streamguard.Error{Source: streamguard.SourceModel, Reason: streamguard.ReasonModelError, Message: err.Error(), Err: err}
	}
	if e.Message == "" && e.Err != nil {
		// Error() says what Err says when Message is empty, and so do the
		// failure frame and record: that text is scrubbed here too, not
		// only of key shapes.
		e.Message = streamguard.Sanitize(e.Err.Error(), 0)
	}
	secrets := redact.Secrets(r)
	e.Message = streamguard.Sanitize(redact.Scrub(e.Message, secrets), streamguard.MaxMessage)
	e.Code = streamguard.Sanitize(redact.Scrub(e.Code, secrets), 128)
	e.RequestID = streamguard.Sanitize(redact.Scrub(e.RequestID, secrets), 128)
	return &e
}

// refusedCredentials reports whether an upstream status refuses the caller's
// credentials or account: 401, 402, 403, or a proxy's 407.
func refusedCredentials(status int) bool {
	switch status {
	case http.StatusUnauthorized, http.StatusPaymentRequired, http.StatusForbidden, http.StatusProxyAuthRequired:
		return true
	}
	return false
}

// StatusFor returns the HTTP status to answer for e: its own StatusCode when
// it is an error status, else the status its reason maps to
// (streamguard.Reason.Status: payload too large 413, timeout 504,
// unavailable 503, canceled 499, ...).
func StatusFor(e *streamguard.Error) int {
	if e.StatusCode >= 400 && e.StatusCode <= 599 {
		return e.StatusCode
	}
	return e.Reason.Status()
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
