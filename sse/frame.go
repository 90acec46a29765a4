package sse

import (
	"encoding/json"
	"errors"
	"io"

	"github.com/streamguard/streamguard"
	"github.com/streamguard/streamguard/internal/redact"
)

// failure is the JSON of a failure frame's data line.
type failure struct {
	Error     string `json:"error"`
	Source    string `json:"source"`
	Reason    string `json:"reason"`
	Status    int    `json:"status,omitempty"`
	Code      string `json:"code,omitempty"`
	RequestID string `json:"request_id,omitempty"`
	Retryable bool   `json:"retryable"`
	Hint      string `json:"hint,omitempty"`
}

// AppendFailureFrame appends to dst the frame that ends a failed stream:
//
//	event: error
//	data: {"error":"unexpected EOF","source":"network","reason":"truncated","status":200,"retryable":true,"hint":"..."}
//
// followed by a blank line: the error's message, where it came from, what
// happened and where to look next. err is read as a *streamguard.Error (through
// errors.As, or classified with streamguard.FromError). The data line is
// JSON, which escapes every control character, so no text from upstream can
// end the line, add a field or start another event: whatever err holds, the
// frame is exactly one event with the fields event and data.
func AppendFailureFrame(dst []byte, err error) []byte {
	var e *streamguard.Error
	if !errors.As(err, &e) {
		e = streamguard.FromError(err)
	}
	if e == nil {
		e = &streamguard.Error{Source: streamguard.SourceUnknown}
	}
	msg := e.Message
	if msg == "" && e.Err != nil {
		msg = e.Err.Error()
	}
	if msg == "" {
		msg = string(e.Reason)
	}
	data, _ := json.Marshal(failure{
		Error:     streamguard.Sanitize(redact.Shapes(msg), streamguard.MaxMessage),
		Source:    string(e.Source),
		Reason:    string(e.Reason),
		Status:    e.StatusCode,
		Code:      streamguard.Sanitize(redact.Shapes(e.Code), 128),
		RequestID: streamguard.Sanitize(e.RequestID, 128),
		Retryable: e.Retryable,
		Hint:      e.Hint(),
	})
	dst = append(dst, "event: error\ndata: "...)
	dst = append(dst, data...)
	return append(dst, "\n\n"...)
}

// WriteFailureFrame writes the frame AppendFailureFrame builds to w. A
// writer that relays a stream writes it once, after the last whole event it
// relayed, and then ends its response.
func WriteFailureFrame(w io.Writer, err error) error {
	_, werr := w.Write(AppendFailureFrame(nil, err))
	return werr
}
