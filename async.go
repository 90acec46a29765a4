package streamguard

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/streamguard/streamguard/internal/redact"
)

// An async prediction fails in two places. The submit (a POST to
// /async_predict or /async_run_remote) fails only when the request is not
// queued: its status and body classify as any other response, with
// [AsyncRequestID]. Everything that happens after the request is queued
// arrives later, in the errors array of the result the platform posts to the
// webhook: [ClassifyAsync] turns those into the same *Error values as the sync
// path.

// AsyncResult is the body of the webhook the platform posts when an async
// request completes:
//
//	{"request_id", "model_id", "deployment_id", "type", "time", "data", "errors": [{"code", "message"}]}
//
// An empty Errors means success: Data holds the model's output. A non-empty
// Errors means the prediction failed; [ClassifyAsync] classifies it.
type AsyncResult struct {
	RequestID    string          `json:"request_id"`    // the ID the submit answered with
	ModelID      string          `json:"model_id"`      // the model that ran the request
	DeploymentID string          `json:"deployment_id"` // the deployment that ran the request
	Type         string          `json:"type"`          // the kind of notification, as sent
	Time         string          `json:"time"`          // when the request completed, as sent (RFC 3339 in UTC; parse with time.RFC3339Nano)
	Data         json.RawMessage `json:"data"`          // the model's output, as raw JSON; null or absent on failure
	Errors       []AsyncError    `json:"errors"`        // empty on success
}

// AsyncError is one entry of an [AsyncResult]'s errors array.
type AsyncError struct {
	Code    string `json:"code"`    // MODEL_PREDICT_ERROR, MODEL_UNAVAILABLE, ...
	Message string `json:"message"` // the platform's or the model's message
}

// The error codes of an async result, from the platform's async API.
const (
	AsyncModelNotReady       = "MODEL_NOT_READY"
	AsyncModelDoesNotExist   = "MODEL_DOES_NOT_EXIST"
	AsyncModelInvalidInput   = "MODEL_INVALID_INPUT"
	AsyncModelPredictError   = "MODEL_PREDICT_ERROR"
	AsyncModelUnavailable    = "MODEL_UNAVAILABLE"
	AsyncModelPredictTimeout = "MODEL_PREDICT_TIMEOUT"
	AsyncRequestNotSupported = "ASYNC_REQUEST_NOT_SUPPORTED"
	AsyncInternalServerError = "INTERNAL_SERVER_ERROR"
)

// asyncCodes maps the error codes of an async result to their class. As on
// the sync path, a failure that sending the same request again may cure (a
// model not ready, an unreachable container, a platform error) is
// retryable; a timeout is not: the request already spent the 3600 s budget.
var asyncCodes = map[string]codeClass{
	AsyncModelNotReady:       {SourcePlatform, ReasonUnavailable, true},
	AsyncModelDoesNotExist:   {SourceRequest, ReasonNotFound, false},
	AsyncModelInvalidInput:   {SourceRequest, ReasonBadRequest, false},
	AsyncModelPredictError:   {SourceModel, ReasonModelError, false},
	AsyncModelUnavailable:    {SourcePlatform, ReasonUnreachable, true},
	AsyncModelPredictTimeout: {SourcePlatform, ReasonTimeout, false},
	AsyncRequestNotSupported: {SourceRequest, ReasonBadRequest, false},
	AsyncInternalServerError: {SourcePlatform, ReasonPlatformError, true},
}

// ClassifyAsync returns one *Error per entry of r's errors array, in order,
// or nil when the array is empty (the prediction succeeded) or r is nil.
//
// The codes map as follows (reason/source): MODEL_NOT_READY
// unavailable/platform, MODEL_DOES_NOT_EXIST not_found/request,
// MODEL_INVALID_INPUT bad_request/request, MODEL_PREDICT_ERROR
// model_error/model, MODEL_UNAVAILABLE unreachable/platform,
// MODEL_PREDICT_TIMEOUT timeout/platform, ASYNC_REQUEST_NOT_SUPPORTED
// bad_request/request, INTERNAL_SERVER_ERROR platform_error/platform. Codes
// match case-insensitively. A code not in this list is kept in Code with
// SourceUnknown, an empty Reason, and Retryable false.
//
// Each error's Code is the code as sent and its Message the entry's message,
// both sanitized (Message to at most [MaxMessage] bytes); RequestID is r's
// request_id; StatusCode is 0, as no HTTP status belongs to the failure.
func ClassifyAsync(r *AsyncResult) []*Error {
	if r == nil || len(r.Errors) == 0 {
		return nil
	}
	id := clean(r.RequestID, 128, nil)
	errs := make([]*Error, 0, len(r.Errors))
	for _, ae := range r.Errors {
		code := clean(ae.Code, 128, nil)
		e := &Error{
			Source:    SourceUnknown,
			Message:   clean(ae.Message, MaxMessage, nil),
			Code:      code,
			RequestID: id,
		}
		if c, ok := asyncCodes[strings.ToUpper(code)]; ok {
			e.Source, e.Reason, e.Retryable = c.source, c.reason, c.retryable
		}
		errs = append(errs, e)
	}
	return errs
}

// maxSubmitBody bounds what AsyncRequestID reads of a submit's 2xx body:
// {"request_id": "..."} is a few dozen bytes.
const maxSubmitBody = 64 << 10

// errNoRequestID is the cause of the error for a 2xx submit answer that
// carries no request ID.
var errNoRequestID = errors.New("async submit answer has no request_id")

// errSecretRequestID is the cause of the error for a submit answer whose
// request_id holds a credential (the request's, or one of a known shape).
var errSecretRequestID = errors.New("async submit answer's request_id holds a credential")

// errBadRequestID is the cause of the error for a submit answer whose
// request_id could not be returned as it is: over 128 bytes, or with
// control characters, invalid UTF-8 or spaces at its ends. An altered ID
// would poll and cancel nothing, and match no webhook's result.
var errBadRequestID = errors.New("async submit answer's request_id is not an ID (over 128 bytes, control characters, or spaces at its ends)")

// AsyncRequestID reads the answer to an async submit and returns the request
// ID the platform queued the request under: the request_id of a 2xx body
// {"request_id": "..."} (the platform answers 201, or 202 on some routes).
//
// For a status of 400 or more it returns the error of [Check]: a 429
// CAPACITY_EXCEEDED (async capacity or load shedding) is rate_limited,
// platform, retryable; a 413 is payload_too_large; and so on. The body then
// stays readable, as with Check. A 2xx whose body has no request_id, or
// one that is not an ID to poll with (over 128 bytes, control characters),
// or another status below 400, returns an *Error with SourceUnknown and the
// status. On success the body has been read (at most 64 KiB of it); the
// caller closes it as always.
func AsyncRequestID(resp *http.Response) (string, error) {
	if resp == nil {
		return "", &Error{Source: SourceUnknown, Message: "no async submit response", Err: errNoRequestID}
	}
	if err := Check(resp); err != nil {
		return "", err
	}
	secrets := redact.Secrets(resp.Request) // a server may echo the key
	noID := func(cause error) error {
		what := " without a request_id"
		if cause == errBadRequestID {
			what = " with a request_id that is not an ID (over 128 bytes, control characters, or spaces at its ends)"
		}
		return &Error{
			StatusCode: resp.StatusCode,
			Source:     SourceUnknown,
			Message:    "async submit answered " + strconv.Itoa(resp.StatusCode) + what,
			RequestID:  clean(RequestID(resp.Header), 128, secrets),
			Err:        cause,
		}
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 || resp.Body == nil {
		return "", noID(errNoRequestID)
	}
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxSubmitBody))
	if err != nil {
		return "", noID(err)
	}
	var answer struct {
		RequestID json.RawMessage `json:"request_id"`
	}
	if err := json.Unmarshal(raw, &answer); err != nil {
		return "", noID(err)
	}
	id, _ := jsonText(answer.RequestID)
	switch s := Sanitize(id, 128); {
	case s == "":
		return "", noID(errNoRequestID)
	case s != id:
		return "", noID(errBadRequestID)
	}
	if clean(id, 128, secrets) != id {
		return "", noID(errSecretRequestID) // not an ID to poll with, nor to log
	}
	return id, nil
}
