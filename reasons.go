package streamguard

import (
	"net/http"
	"strconv"
)

// reasonInfo is what a Reason means, in one row: the status a server
// answers for a failure of that reason, and the hint that says where to
// look next.
type reasonInfo struct {
	status int
	hint   func(e *Error) string
}

// fixed is a hint that depends on nothing but the reason.
func fixed(h string) func(*Error) string { return func(*Error) string { return h } }

// reasons is the table of every Reason: a Reason without a row is not one
// the library knows (a relayed document naming it is not trusted), and
// TestEveryReasonHasARow proves each constant has one.
var reasons = map[Reason]reasonInfo{
	ReasonBadRequest: {http.StatusBadRequest, func(e *Error) string {
		if e.Source == SourceModel {
			return "the model rejected the input: compare the request with the model's input schema and read the model logs"
		}
		return "check that the request body is valid JSON and the URL path is correct"
	}},
	ReasonUnauthorized: {http.StatusUnauthorized, func(e *Error) string {
		if e.Source == SourcePlatform {
			return "a service between you and the model had its own credentials refused upstream: not your request; tell its operator"
		}
		return "check the API key in the Authorization header (Bearer or Api-Key)"
	}},
	ReasonNotFound: {http.StatusNotFound, fixed("confirm the model or deployment ID and that you call the right predict endpoint")},
	ReasonBilling:  {http.StatusPaymentRequired, fixed("check the account's billing and usage settings, or contact its owner")},
	ReasonPayloadTooLarge: {http.StatusRequestEntityTooLarge, func(e *Error) string {
		if e.Limit > 0 {
			return "send large inputs by file or URL, not inline: the body cap in force is " + strconv.FormatInt(e.Limit, 10) + " bytes"
		}
		return "send large inputs by file or URL, not inline (100 MB edge cap; 256 KiB for async by default)"
	}},
	ReasonRateLimited:   {http.StatusTooManyRequests, fixed("slow down: retry after the Retry-After delay, with backoff")},
	ReasonModelError:    {http.StatusInternalServerError, fixed("the model's own error: read the error body and the model logs")},
	ReasonUnreachable:   {http.StatusBadGateway, fixed("check the model logs for a crash or OOMKilled; if they are clean, retry")},
	ReasonUnavailable:   {http.StatusServiceUnavailable, fixed("mostly transient (draining, routing or not ready): retry with exponential backoff")},
	ReasonPlatformError: {http.StatusBadGateway, fixed("a platform-side error: retry with backoff; if it persists, contact support with the request ID")},
	ReasonTimeout:       {http.StatusGatewayTimeout, (*Error).timeoutHint},
	// 499: the client closed the request, as nginx and the gateway log it.
	ReasonCanceled:       {499, fixed("the client disconnected or canceled before the response finished: not a platform or model failure")},
	ReasonConnection:     {http.StatusBadGateway, fixed("no response was obtained: check DNS, TLS and connectivity to the gateway; retry")},
	ReasonTruncated:      {http.StatusBadGateway, fixed("the stream stopped before its end: treat the request as failed, check the model logs, and retry")},
	ReasonStalled:        {http.StatusGatewayTimeout, fixed("the stream sent nothing within its idle timeout: check the model logs for a hang, and retry")},
	ReasonNoEvents:       {http.StatusBadGateway, func(e *Error) string { return noEventsHint(e.Code) }},
	ReasonResumeMismatch: {http.StatusBadGateway, fixed("the server answered the resume with events that do not follow the last one delivered (it restarted or skipped ahead): send the request again, and check that the server honours Last-Event-ID")},
	ReasonEventTooLarge:  {http.StatusBadGateway, fixed("an event exceeded the guard's size limit: raise sse.Config.MaxEventBytes if the stream is legitimate")},
}

// Status returns the HTTP status a server answers for a failure of reason
// r when it has no status of its own to pass on: 400 for bad_request, 413
// for payload_too_large, 504 for timeout and stalled, 499 for canceled,
// 502 for the upstream's failures (unreachable, truncated, no_events, ...),
// and 500 for model_error and any reason the library does not know.
func (r Reason) Status() int {
	if info, ok := reasons[r]; ok {
		return info.status
	}
	return http.StatusInternalServerError
}
