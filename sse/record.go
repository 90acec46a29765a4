package sse

import (
	"encoding/json"
	"errors"
	"io"

	"github.com/streamguard/streamguard"
)

// failureRecord returns the record that ends a failed JSON stream for a
// consumer downstream, where the framing allows one: a JSON line (RS first
// for json-seq), or a last element and the ']' that closes the array. It
// returns nil after an array's ']' or in a body that was not an array.
func (lp *lineParser) failureRecord(err error) []byte {
	var dst []byte
	switch {
	case lp.kind != framingArray:
		if lp.tailNL {
			dst = append(dst, '\n')
		}
		if lp.kind == framingSeq {
			dst = append(dst, 0x1e)
		}
		return append(appendRecord(dst, err), '\n')
	case lp.st == arrRaw:
		return nil
	case lp.st == arrStart:
		dst = append(dst, '[')
	case lp.needComma:
		dst = append(dst, ',')
	}
	return append(appendRecord(dst, err), "]\n"...)
}

// AppendFailureRecord appends to dst the record that ends a failed JSON-lines
// stream of Content-Type ct (see IsJSONLines), the counterpart of the SSE
// failure frame:
//
//	{"error":"streamguard: 200 network truncated after 3 events: unexpected EOF (hint)","hint":"...","message":"unexpected EOF","reason":"truncated","retryable":true,"source":"network","status":200,"type":"error"}
//
// and a line end, with an RS (0x1E) before it for application/json-seq. Its
// "error" is a string, the error's whole line, because Ollama's client
// (github.com/ollama/ollama/api) reads each line's "error" as a string and
// returns it as an error: an object there would fail its decoding. The
// fields beside it are those of the error's JSON document
// (streamguard.Error.MarshalJSON), which streamguard.ClassifyEvent reads
// back into the same source and reason. The record is JSON, which escapes
// every control character, so no text from upstream can end the line or
// start another record. err is read as AppendFailureFrame reads it.
func AppendFailureRecord(dst []byte, ct string, err error) []byte {
	if linesKind(ct) == framingSeq {
		dst = append(dst, 0x1e)
	}
	return append(appendRecord(dst, err), '\n')
}

// WriteFailureRecord writes the record AppendFailureRecord builds to w: a
// relay of a JSON-lines stream writes it once, after the last whole line
// it relayed, and then ends its response.
func WriteFailureRecord(w io.Writer, ct string, err error) error {
	_, werr := w.Write(AppendFailureRecord(nil, ct, err))
	return werr
}

// appendRecord appends the failure record's JSON object, without a line
// end: the error's document with its "error" object replaced by the
// error's line.
func appendRecord(dst []byte, err error) []byte {
	var e *streamguard.Error
	if !errors.As(err, &e) {
		e = streamguard.FromError(err)
	}
	if e == nil {
		e = &streamguard.Error{Source: streamguard.SourceUnknown}
	}
	doc, _ := e.MarshalJSON()
	var fields map[string]json.RawMessage
	if json.Unmarshal(doc, &fields) != nil {
		fields = map[string]json.RawMessage{}
	}
	line, _ := json.Marshal(e.Error())
	fields["error"] = line
	out, _ := json.Marshal(fields) // keys sorted: "error" comes first
	return append(dst, out...)
}
