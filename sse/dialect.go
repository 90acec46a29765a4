package sse

import "bytes"

// Dialect tells the guard how one streaming API ends its streams and reports
// errors inside them. Each predicate sees one complete event: its type (the
// value of its "event:" field, empty when it has none) and its data (its
// "data:" lines joined by "\n"). The slices are only valid during the call and
// must not be kept or modified. Predicates must not allocate: they run once
// per event.
//
// A stream whose events match no dialect's Detect needs no terminal event: it
// is judged by its transport and framing alone.
type Dialect struct {
	// Name identifies the dialect in spans and errors.
	Name string
	// Detect reports whether the event shows the stream is of this dialect.
	// Once a dialect is detected, a stream that ends without its Terminal is
	// truncated. It is asked about the first 16 events only: a stream
	// detected by none of them is taken for one of no known dialect (its
	// Terminal, seen later, still names it).
	Detect func(typ, data []byte) bool
	// Terminal reports whether the event is the dialect's normal end of
	// stream.
	Terminal func(typ, data []byte) bool
	// Error reports whether the event is an error inside the stream. Its data
	// is classified with streamguard.ClassifyEvent.
	Error func(typ, data []byte) bool
}

// The dialects recognised without configuration.
var (
	// OpenAI is OpenAI chat/completions and completions, and the
	// OpenAI-compatible servers (vLLM, TGI, the platform's own routes): the
	// stream ends with "data: [DONE]"; an error is a data line whose JSON
	// object starts with an "error" key ({"error": {...}} or {"error":
	// "..."}, vLLM and TGI, which send [DONE] after it; not null, false
	// or "", which a serializer without omitempty writes in every chunk)
	// or is an old vLLM {"object": "error", ...}.
	OpenAI = Dialect{Name: "openai", Detect: openaiDetect, Terminal: openaiTerminal, Error: openaiError}

	// Responses is the OpenAI Responses API: the stream ends with
	// response.completed, response.incomplete or response.failed; an error is
	// an "error" event or response.failed.
	Responses = Dialect{Name: "responses", Detect: responsesDetect, Terminal: responsesTerminal, Error: responsesError}

	// Anthropic is the Anthropic Messages API: message_start ...
	// message_stop, with ping events; an error is an "error" event.
	Anthropic = Dialect{Name: "anthropic", Detect: anthropicDetect, Terminal: anthropicTerminal, Error: anthropicError}
)

// DefaultDialects returns the dialects the guard recognises when
// Config.Dialects is nil: OpenAI, Responses and Anthropic. Append your own to
// it to add a dialect; set Config.Dialects to a list without them to replace
// them.
func DefaultDialects() []Dialect {
	d := make([]Dialect, len(builtin))
	for i, b := range builtin {
		d[i] = *b
	}
	return d
}

// builtin are the default dialects in their order; the guard's fast path
// (judgeBuiltin) names them by these positions, 1-based as body.dialect
// counts, so that reordering or adding one changes both together, and
// TestFastPathMatchesDialects proves the fast path judges every event as
// the dialect values do.
var builtin = [...]*Dialect{dialectOpenAI - 1: &OpenAI, dialectResponses - 1: &Responses, dialectAnthropic - 1: &Anthropic}

const (
	dialectOpenAI = 1 + iota
	dialectResponses
	dialectAnthropic
)

var done = []byte("[DONE]")

func openaiTerminal(_, data []byte) bool { return bytes.Equal(data, done) }

func openaiDetect(_, data []byte) bool {
	if len(data) == 0 {
		return false
	}
	if data[0] == '[' {
		return bytes.Equal(data, done)
	}
	return data[0] == '{' && (isValue(data, []byte(`"chat.completion`)) || isValue(data, []byte(`"text_completion"`)))
}

// isValue reports whether v, a JSON string's start, is in data as a
// member's value (after a ':'), not inside another string: there its
// quote is escaped (`the object is \"chat.completion\"`).
func isValue(data, v []byte) bool {
	for i := 0; i < len(data); {
		k := bytes.Index(data[i:], v)
		if k < 0 {
			return false
		}
		p := i + k - 1
		for p >= 0 && (data[p] == ' ' || data[p] == '\t' || data[p] == '\n' || data[p] == '\r') {
			p--
		}
		if p >= 0 && data[p] == ':' {
			return true
		}
		i += k + 1
	}
	return false
}

func openaiError(_, data []byte) bool {
	key, rest := firstKey(data)
	switch string(key) {
	case "error":
		return isErrorValue(rest)
	case "object":
		v, _ := stringValue(rest)
		return string(v) == "error"
	}
	return false
}

// eventType returns typ, or, for an event without an "event:" line, the
// "type" its JSON data starts with.
func eventType(typ, data []byte) []byte {
	if len(typ) > 0 {
		return typ
	}
	key, rest := firstKey(data)
	if string(key) != "type" {
		return nil
	}
	v, _ := stringValue(rest)
	return v
}

func responsesDetect(typ, data []byte) bool {
	return bytes.HasPrefix(eventType(typ, data), []byte("response."))
}

func responsesTerminal(typ, data []byte) bool {
	switch string(eventType(typ, data)) {
	case "response.completed", "response.incomplete", "response.failed":
		return true
	}
	return false
}

func responsesError(typ, data []byte) bool {
	switch string(eventType(typ, data)) {
	case "error", "response.failed":
		return true
	}
	return false
}

// anthropicDetect names Anthropic's own events; not "ping", which other
// servers' keepalives send too (sse-starlette's).
func anthropicDetect(typ, data []byte) bool {
	switch string(eventType(typ, data)) {
	case "message_start", "content_block_start", "content_block_delta", "content_block_stop", "message_delta", "message_stop":
		return true
	}
	return false
}

func anthropicTerminal(typ, data []byte) bool { return string(eventType(typ, data)) == "message_stop" }

func anthropicError(typ, data []byte) bool { return string(eventType(typ, data)) == "error" }

// firstKey returns the first key of a JSON object and what follows its colon,
// without decoding the object: `{"error": {...}}` gives "error" and ` {...}}`.
// It returns nil when data does not start with an object key.
func firstKey(data []byte) (key, rest []byte) {
	i := skipSpace(data, 0)
	if i >= len(data) || data[i] != '{' {
		return nil, nil
	}
	i = skipSpace(data, i+1)
	if i >= len(data) || data[i] != '"' {
		return nil, nil
	}
	// Keys are short: a plain loop beats a vectorised search here.
	end := i + 1
	for end < len(data) && data[end] != '"' {
		end++
	}
	if end == len(data) {
		return nil, nil
	}
	key = data[i+1 : end]
	j := skipSpace(data, end+1)
	if j >= len(data) || data[j] != ':' {
		return nil, nil
	}
	return key, data[j+1:]
}

// isErrorValue reports whether rest, what follows a first key "error", holds
// an error: not null, false or "", which a serializer without omitempty
// writes in every healthy record.
func isErrorValue(rest []byte) bool {
	i := skipSpace(rest, 0)
	v := rest[i:]
	return !bytes.HasPrefix(v, []byte("null")) && !bytes.HasPrefix(v, []byte("false")) && !bytes.HasPrefix(v, []byte(`""`))
}

// stringValue returns the JSON string at the start of b (after spaces),
// without unescaping: enough to compare it with a plain ASCII name.
func stringValue(b []byte) ([]byte, bool) {
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '"' {
		return nil, false
	}
	end := bytes.IndexByte(b[i+1:], '"')
	if end < 0 {
		return nil, false
	}
	return b[i+1 : i+1+end], true
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}
