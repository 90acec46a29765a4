package sse

import (
	"encoding/json"
	"errors"
	"io"

	"github.com/streamguard/streamguard"
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
}

// AppendFailureFrame appends to dst the frame that ends a failed stream:
//
//	event: error
//	data: {"error":"streamguard: 200 network truncated ...","source":"network","reason":"truncated","status":200,"retryable":true}
//
// followed by a blank line. err is read as a *streamguard.Error (through
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
	data, _ := json.Marshal(failure{
		Error:     e.Error(),
		Source:    string(e.Source),
		Reason:    string(e.Reason),
		Status:    e.StatusCode,
		Code:      e.Code,
		RequestID: e.RequestID,
		Retryable: e.Retryable,
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
