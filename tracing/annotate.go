package tracing

import (
	"net/http"
	"strconv"

	"github.com/streamguard/streamguard"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

// Annotate tags span with the failure err: streamguard.error.source and
// streamguard.error.reason (and the error's code, retryability and request
// ID when known), error.type, and status Error with the error's one line. err
// is classified with streamguard.FromError, so a *streamguard.Error anywhere
// in its chain is used as it is, and a bare context.Canceled is the
// caller's. A nil span or err does nothing.
//
// The caller's own cancellation (source client, reason canceled, no error
// status) is not an error, as the semantic conventions say: its source and
// reason are set, error.type and the status are not.
//
// Use it to tag a span this package did not start: the server span of
// otelhttp.NewHandler (trace.SpanFromContext(r.Context()) inside the
// handler), or the caller's own span around a streamed call. Inside a handler
// wrapped by NewHandler it tags NewHandler's span with the server's rules (a
// 4xx is attributed but is not an error of a server span), and NewHandler
// then keeps that classification instead of deriving one from the status
// code or the connection (a panic still overrides it).
func Annotate(span trace.Span, err error) {
	if span == nil || err == nil {
		return
	}
	se := streamguard.FromError(err)
	if s, ok := span.(*serverSpan); ok {
		s.annotation.Store(se)
		applyFailure(s.Span, se, s.req, true)
		return
	}
	applyFailure(span, se, nil, false)
}

// applyFailure tags span with se and returns its error.type, or "" when se is
// not an error of the span: the caller's own cancellation, or, on a server
// span, a 4xx (the semantic conventions leave a server span's status unset
// for a client error). The code, request ID and status message are
// scrubbed of r's secrets and of key shapes (r may be nil).
func applyFailure(span trace.Span, se *streamguard.Error, r *http.Request, server bool) string {
	attrs := make([]attribute.KeyValue, 0, 6)
	attrs = append(attrs,
		attribute.String(AttrErrorSource, string(source(se))),
		attribute.String(AttrErrorReason, string(se.Reason)),
		attribute.Bool(AttrErrorRetryable, se.Retryable))
	if se.Code != "" {
		attrs = append(attrs, attribute.String(AttrErrorCode, scrub(se.Code, r)))
	}
	if se.RequestID != "" {
		attrs = append(attrs, attribute.String(AttrRequestID, scrub(se.RequestID, r)))
	}
	if !isError(se, server) {
		span.SetAttributes(attrs...)
		return ""
	}
	et := errorType(se)
	attrs = append(attrs, semconv.ErrorTypeKey.String(et))
	span.SetAttributes(attrs...)
	span.SetStatus(codes.Error, scrub(se.Error(), r))
	return et
}

func source(se *streamguard.Error) streamguard.Source {
	if se.Source == "" {
		return streamguard.SourceUnknown
	}
	return se.Source
}

// errorType is the failure's reason ("truncated", "stalled",
// "rate_limited", "unreachable", ...), so that a back end grouping by
// error.type sees the library's attribution; an error status the library
// did not classify (no reason) is its status code, as the conventions say;
// anything else is _OTHER. All of them are low-cardinality, as error.type
// must be.
func errorType(se *streamguard.Error) string {
	switch {
	case se.Reason != "":
		return string(se.Reason)
	case se.StatusCode >= 400:
		return strconv.Itoa(se.StatusCode)
	}
	return semconv.ErrorTypeOther.Value.AsString()
}

// isError reports whether se is an error of the span it tags.
func isError(se *streamguard.Error, server bool) bool {
	if server && se.StatusCode >= 400 && se.StatusCode < 500 {
		return false
	}
	return !canceledByCaller(se)
}

// canceledByCaller reports whether se is the caller's own cancellation, which
// the semantic conventions do not count as an error. An error status is
// always an error, whatever its body says.
func canceledByCaller(se *streamguard.Error) bool {
	return se.StatusCode < 400 && se.Source == streamguard.SourceClient && se.Reason == streamguard.ReasonCanceled
}
