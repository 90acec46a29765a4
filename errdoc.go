package streamguard

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strconv"

	"github.com/streamguard/streamguard/internal/coding"
	"github.com/streamguard/streamguard/internal/errprefix"
	"github.com/streamguard/streamguard/internal/redact"
)

// document is the JSON of an Error where an SDK must read it: an error
// response body that Conform rewrites, and the data of the sse package's
// failure frame. Its "error" object is the one OpenAI's and Anthropic's SDKs
// parse (message, type, code; Anthropic's envelope adds "type": "error");
// the fields beside it carry the Error itself, which Classify and
// ClassifyEvent read back, so that a failure keeps its attribution across a
// relay.
type document struct {
	Error     docError `json:"error"`
	Type      string   `json:"type"`
	Source    Source   `json:"source"`
	Reason    Reason   `json:"reason"`
	Status    int      `json:"status,omitempty"`
	Message   string   `json:"message"`
	Code      string   `json:"code,omitempty"`
	RequestID string   `json:"request_id,omitempty"`
	Retryable bool     `json:"retryable"`
	Hint      string   `json:"hint,omitempty"`
}

// docError is the document's "error" object. Its message is the Error's
// whole line (source, reason, message and hint), which is what an SDK's
// error prints; its type is the reason; its code the Error's Code, or the
// reason when there is none.
type docError struct {
	Message string `json:"message"`
	Type    Reason `json:"type"`
	Code    string `json:"code"`
	Source  Source `json:"source"`
	Reason  Reason `json:"reason"`
}

// MarshalJSON encodes e as the error document streamguard writes where an
// SDK reads it:
//
//	{"error":{"message":"streamguard: 503 platform unavailable: ... (hint)","type":"unavailable","code":"unavailable","source":"platform","reason":"unavailable"},
//	 "type":"error","source":"platform","reason":"unavailable","status":503,"message":"...","retryable":true,"hint":"..."}
//
// The "error" object is the shape OpenAI's and Anthropic's SDKs (openai-go,
// go-openai, anthropic-sdk-go) parse into their own error types, so their
// callers keep the status, and read the source and reason in its message,
// type and extra fields. [Classify] and [ClassifyEvent] read the fields
// beside it back into the same Source, Reason, Retryable, Message and Code.
// Every text in it is cleaned as Error() cleans it: no control characters,
// no well-known key shape.
func (e *Error) MarshalJSON() ([]byte, error) {
	src := e.Source
	if src == "" {
		src = SourceUnknown
	}
	code := clean(e.Code, 128, nil)
	typeCode := code
	if typeCode == "" {
		typeCode = string(e.Reason)
	}
	return json.Marshal(document{
		Error:     docError{Message: e.Error(), Type: e.Reason, Code: typeCode, Source: src, Reason: e.Reason},
		Type:      "error",
		Source:    src,
		Reason:    e.Reason,
		Status:    e.StatusCode,
		Message:   clean(e.Message, MaxMessage, nil),
		Code:      code,
		RequestID: clean(e.RequestID, 128, nil),
		Retryable: e.Retryable,
		Hint:      e.Hint(),
	})
}

// Conform classifies resp as [Check] does and returns the same error; in
// addition, when the body is not already an error the SDKs parse (a JSON
// object whose "error" is an object with a string "message", as OpenAI and
// Anthropic send), it replaces the body with the error's JSON document
// (see [Error.MarshalJSON]) and sets Content-Type and Content-Length to
// match. The platform's {"error": "<string>"}, a proxy's HTML page or a
// plain-text 502 then reach an SDK as its own typed error with the status
// kept, instead of a JSON decoding error that loses it; Check on the
// conformed response still returns the same Source, Reason, Message and
// Code. The original body is closed. A body the SDKs already parse is left
// as it is, except that the request's credentials and well-known key shapes
// a server echoed in its strings are replaced by REDACTED, as in an Error
// (the document is then re-encoded), and that one cut short (over
// MaxErrorBody, or a read that failed) is replaced too; a body
// still content-encoded, and the answer to a HEAD, are left alone. It returns nil, and
// does nothing, for a nil resp or a status below 400.
func Conform(resp *http.Response) error {
	if resp == nil || resp.StatusCode < 400 {
		return nil
	}
	prefix, complete := errprefix.Keep(resp)
	e := classify(resp, prefix, !complete)
	switch {
	case coding.Encoded(resp.Header), resp.Request != nil && resp.Request.Method == http.MethodHead:
	case !sdkShaped(prefix) || !complete:
		// A body cut short (over MaxErrorBody, or its read failed) could
		// hold a credential past the cut: the error's document replaces it.
		doc, _ := e.MarshalJSON()
		replaceBody(resp, doc)
	default:
		// The SDK will quote this body: not with a credential the server
		// echoed back in it.
		if b, changed := scrubJSON(prefix, redact.Secrets(resp.Request)); changed {
			replaceBody(resp, b)
		}
	}
	return e
}

// replaceBody closes resp's body and puts b, a JSON document, in its place.
func replaceBody(resp *http.Response, b []byte) {
	if resp.Body != nil {
		resp.Body.Close()
	}
	resp.Body = io.NopCloser(bytes.NewReader(b))
	resp.ContentLength = int64(len(b))
	resp.Header = resp.Header.Clone()
	if resp.Header == nil {
		resp.Header = http.Header{}
	}
	resp.Header.Set("Content-Type", "application/json")
	resp.Header.Set("Content-Length", strconv.Itoa(len(b)))
}

// sdkShaped reports whether an error body is a JSON object whose "error" is
// an object with a string "message": what the SDKs parse.
func sdkShaped(raw []byte) bool {
	var v struct {
		Error *struct {
			Message json.RawMessage `json:"message"`
		} `json:"error"`
	}
	if json.Unmarshal(raw, &v) != nil || v.Error == nil {
		return false
	}
	_, ok := jsonText(v.Error.Message)
	return ok && v.Error.Message[0] == '"'
}
