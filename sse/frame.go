package sse

import (
	"errors"
	"io"

	"github.com/streamguard/streamguard"
)

// AppendFailureFrame appends to dst the frame that ends a failed stream:
//
//	data: {"error":{"message":"streamguard: 200 network truncated after 3 events: unexpected EOF (hint)","type":"truncated",...},"type":"error","source":"network","reason":"truncated","status":200,"message":"unexpected EOF","retryable":true,"hint":"..."}
//	event: error
//
// followed by a blank line. Its data is the error's JSON document
// (streamguard.Error.MarshalJSON): an "error" object that OpenAI's and
// Anthropic's SDKs parse as an API error, carrying the source, reason and
// hint in its message, beside the fields streamguard.ClassifyEvent reads
// back. The data line comes first because go-openai takes a data line that
// starts {"error": as the error and reads no further. err is read as a
// *streamguard.Error (through errors.As, or classified with
// streamguard.FromError). The data line is JSON, which escapes every control
// character, so no text from upstream can end the line, add a field or start
// another event: whatever err holds, the frame is exactly one event with the
// fields data and event.
func AppendFailureFrame(dst []byte, err error) []byte {
	var e *streamguard.Error
	if !errors.As(err, &e) {
		e = streamguard.FromError(err)
	}
	if e == nil {
		e = &streamguard.Error{Source: streamguard.SourceUnknown}
	}
	data, _ := e.MarshalJSON()
	dst = append(dst, "data: "...)
	dst = append(dst, data...)
	return append(dst, "\nevent: error\n\n"...)
}

// WriteFailureFrame writes the frame AppendFailureFrame builds to w. A
// writer that relays a stream writes it once, after the last whole event it
// relayed, and then ends its response.
func WriteFailureFrame(w io.Writer, err error) error {
	_, werr := w.Write(AppendFailureFrame(nil, err))
	return werr
}
