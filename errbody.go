package streamguard

import (
	"bytes"
	"encoding/json"
	"strings"
)

// The shapes an error body can take.
const (
	shapeEmpty = iota
	shapeJSON
	shapeHTML
	shapeText
)

// body is what parseBody found in an error body.
type body struct {
	shape   int
	message string
	code    string
	// attributed: the body is an Error's own document (Error.MarshalJSON),
	// whose source, reason and retryable are taken as they are.
	attributed bool
	source     Source
	reason     Reason
	retryable  bool
}

// envelope is the union of the JSON error shapes: {"error": "msg"}, Baseten's
// {"error", "error_code", "detail"}, OpenAI's {"error": {"message", "type",
// "code"}}, Anthropic's {"type": "error", "error": {"type", "message"}}, and
// the bare {"message"} or {"detail"} of common web frameworks. Every field is
// raw so that an unexpected type in one field never fails the others.
type envelope struct {
	Error     json.RawMessage `json:"error"`
	ErrorCode json.RawMessage `json:"error_code"`
	Detail    json.RawMessage `json:"detail"`
	Message   json.RawMessage `json:"message"`
	Code      json.RawMessage `json:"code"`
	Type      json.RawMessage `json:"type"`
	// An Error's own document (Error.MarshalJSON) adds these.
	Source    json.RawMessage `json:"source"`
	Reason    json.RawMessage `json:"reason"`
	Retryable json.RawMessage `json:"retryable"`
}

// inner is the object form of "error" (OpenAI, Anthropic).
type inner struct {
	Message json.RawMessage `json:"message"`
	Type    json.RawMessage `json:"type"`
	Code    json.RawMessage `json:"code"`
	Status  json.RawMessage `json:"status"` // Google's: a google.rpc code name, its code a number
}

func parseBody(raw []byte, contentType string) body {
	raw = bytes.TrimPrefix(raw, []byte("\xef\xbb\xbf"))
	trimmed := bytes.TrimSpace(raw)
	if len(trimmed) == 0 {
		return body{shape: shapeEmpty}
	}
	if trimmed[0] == '{' {
		if b, ok := parseJSON(trimmed); ok {
			return b
		}
	}
	if trimmed[0] == '<' || strings.Contains(strings.ToLower(contentType), "html") {
		return body{shape: shapeHTML, message: htmlTitle(trimmed)}
	}
	return body{shape: shapeText, message: string(trimmed)}
}

func parseJSON(raw []byte) (body, bool) {
	var env envelope
	if json.Unmarshal(raw, &env) != nil {
		return body{}, false
	}
	b := body{shape: shapeJSON}
	src, _ := jsonText(env.Source)
	reason, _ := jsonText(env.Reason)
	if knownSources[Source(src)] && reasons[Reason(reason)].hint != nil {
		b.attributed, b.source, b.reason = true, Source(src), Reason(reason)
		b.retryable = string(env.Retryable) == "true"
		b.message, _ = jsonText(env.Message)
		if b.message == "" { // a failure frame of 0.1.0: {"error": "<message>", ...}
			b.message, _ = jsonText(env.Error)
		}
		b.code, _ = jsonText(env.Code)
		return b, true
	}
	if s, ok := jsonText(env.Error); ok {
		b.message = s
	} else if len(env.Error) > 0 && env.Error[0] == '{' {
		var in inner
		if json.Unmarshal(env.Error, &in) == nil {
			b.message, _ = jsonText(in.Message)
			b.code = innerCode(in)
		}
	}
	if c, ok := jsonText(env.ErrorCode); ok && c != "" {
		b.code = c
	} else if b.code == "" {
		if c, ok := jsonText(env.Code); ok {
			b.code = c
		}
	}
	detail, _ := jsonText(env.Detail)
	switch {
	case b.message == "" && detail != "":
		b.message = detail
	case b.message != "" && detail != "" && detail != b.message:
		b.message += ": " + detail
	}
	if b.message == "" {
		b.message, _ = jsonText(env.Message)
	}
	if b.message == "" && len(env.Error) > 0 && string(env.Error) != "null" {
		// An "error" of a shape we do not know: keep its text, decoded
		// (a key escaped in it, "sk-a\/b", would escape the scrub).
		b.message = reencode(env.Error)
	}
	return b, true
}

// reencode returns raw, a valid JSON value, encoded again with its strings'
// escapes undone where JSON allows it: "\/" and "\u002f" as '/'. A value
// over MaxErrorBody is returned as it is, cut there: its message is cut
// to MaxMessage anyway, and decoding megabytes of it (an in-stream error
// event may hold 8 MiB) would cost tens of times that.
func reencode(raw json.RawMessage) string {
	if len(raw) > MaxErrorBody {
		return string(raw[:MaxErrorBody])
	}
	var v any
	if json.Unmarshal(raw, &v) != nil {
		return string(raw)
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if enc.Encode(v) != nil {
		return string(raw)
	}
	return strings.TrimSpace(buf.String())
}

// innerCode is the code of an error object: its code when a string, else
// its type, else its status (Google's, whose code is a number), else its
// numeric code.
func innerCode(in inner) string {
	code, _ := jsonText(in.Code)
	if code != "" && in.Code[0] == '"' {
		return code
	}
	for _, raw := range []json.RawMessage{in.Type, in.Status} {
		if s, ok := jsonText(raw); ok && s != "" && raw[0] == '"' {
			return s
		}
	}
	return code
}

// jsonText returns a JSON string's value, or a number's text.
func jsonText(raw json.RawMessage) (string, bool) {
	if len(raw) == 0 {
		return "", false
	}
	switch c := raw[0]; {
	case c == '"':
		var s string
		if json.Unmarshal(raw, &s) == nil {
			return s, true
		}
	case c == '-' || (c >= '0' && c <= '9'):
		return string(raw), true
	}
	return "", false
}

// htmlTitle returns the text of an HTML page's <title>, or of its first <h1>,
// or the page's text with its tags removed: "502 Bad Gateway" for nginx's page.
func htmlTitle(page []byte) string {
	lower := asciiLower(page)
	for _, tag := range []string{"title", "h1"} {
		open := bytes.Index(lower, []byte("<"+tag))
		if open < 0 {
			continue
		}
		start := bytes.IndexByte(lower[open:], '>')
		if start < 0 {
			continue
		}
		start += open + 1
		end := bytes.Index(lower[start:], []byte("</"+tag))
		if end < 0 {
			continue
		}
		if s := strings.TrimSpace(stripTags(page[start : start+end])); s != "" {
			return s
		}
	}
	return stripTags(page)
}

// asciiLower returns b with A to Z folded to lower case and every other
// byte as it is: offsets in it are offsets in b (bytes.ToLower turns an
// invalid byte into three, and changes the length of some characters).
func asciiLower(b []byte) []byte {
	out := make([]byte, len(b))
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		out[i] = c
	}
	return out
}

// stripTags returns b's text without its tags, its runs of spaces made
// one. It keeps all of it (b is an error body, at most MaxErrorBody): the
// message is cut only after the scrub, so that no part of a key survives.
func stripTags(b []byte) string {
	var out strings.Builder
	in := false
	space := false
	for _, c := range b {
		switch {
		case c == '<':
			in = true
		case c == '>':
			in = false
		case in:
		case c == ' ' || c == '\t' || c == '\r' || c == '\n':
			space = out.Len() > 0
		default:
			if space {
				out.WriteByte(' ')
				space = false
			}
			out.WriteByte(c)
		}
	}
	return out.String()
}
