package sse

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/streamguard/streamguard"
)

// The framings of a JSON stream the guard follows besides SSE.
const (
	framingLines = 1 + iota // JSON lines: application/x-ndjson, application/jsonl, ...
	framingSeq              // application/json-seq (RFC 7464): RS before each JSON text, LF after it
	framingArray            // a streamed JSON array: [{...}\n,{...}\n]
)

// The states of a streamed JSON array.
const (
	arrStart   = iota // before its '['
	arrBetween        // inside the array, between elements
	arrIn             // inside an element
	arrRaw            // after its ']', or a body that is not an array: passed through
)

// Ollama is Ollama's streaming API (/api/chat, /api/generate; one JSON
// object per line, application/x-ndjson): its records start with "model"
// and carry "created_at"; the last one has "done": true at its top level
// (with done_reason and the token counts); an error is a line whose object
// starts with an "error" key ({"error": "..."}). The guard recognises it
// without configuration in a JSON-lines body; add it to a Config.Dialects
// of your own to keep it there. Its predicates are given a record as data
// and a nil type.
var Ollama = Dialect{Name: "ollama", Detect: ollamaDetect, Terminal: ollamaTerminal, Error: ollamaError}

// lineDialects are the dialects the guard names in a JSON stream when
// Config.Dialects is nil, 1-based as body.dialect counts.
var lineDialects = [...]string{dialectOllama - 1: "ollama", dialectJSONArray - 1: "json-array"}

const (
	dialectOllama = 1 + iota
	dialectJSONArray
)

// IsJSONLines reports whether a Content-Type is one of the JSON-lines types
// the guard frames by record: application/x-ndjson, application/ndjson,
// application/jsonl, application/x-jsonl, application/jsonlines,
// application/x-jsonlines and application/json-seq, with or without
// parameters, in any case.
func IsJSONLines(ct string) bool { return linesKind(ct) != 0 }

// linesKind returns framingLines or framingSeq for a JSON-lines
// Content-Type, and 0 for any other.
func linesKind(ct string) int {
	mt := strings.TrimSpace(ct)
	if i := strings.IndexByte(mt, ';'); i >= 0 {
		mt = strings.TrimSpace(mt[:i])
	}
	if len(mt) < len("application/") || !strings.EqualFold(mt[:len("application/")], "application/") {
		return 0
	}
	switch strings.ToLower(mt[len("application/"):]) {
	case "x-ndjson", "ndjson", "jsonl", "x-jsonl", "jsonlines", "x-jsonlines":
		return framingLines
	case "json-seq":
		return framingSeq
	}
	return 0
}

// streamedArray reports whether resp is a streamed JSON array the guard
// frames by element: an application/json body of unknown length (chunked)
// answering a request whose path names streamGenerateContent, as Google's
// Gemini API streams without alt=sse. Any other application/json body is
// one document, passed through as before: the guard cannot tell a long
// array answer from a stream, and an element cap would refuse a large one.
func streamedArray(resp *http.Response) bool {
	if resp.ContentLength >= 0 || resp.Request == nil || resp.Request.URL == nil ||
		!strings.Contains(resp.Request.URL.Path, "streamGenerateContent") {
		return false
	}
	mt := strings.TrimSpace(resp.Header.Get("Content-Type"))
	if i := strings.IndexByte(mt, ';'); i >= 0 {
		mt = strings.TrimSpace(mt[:i])
	}
	return strings.EqualFold(mt, "application/json")
}

// framingOf returns the JSON framing of resp, or 0.
func framingOf(resp *http.Response) int {
	if k := linesKind(resp.Header.Get("Content-Type")); k != 0 {
		return k
	}
	if streamedArray(resp) {
		return framingArray
	}
	return 0
}

// lineParser frames a JSON stream by record: a line of JSON lines, or an
// element of a streamed JSON array. As the SSE parser, it never copies: its
// offsets are relative to the first byte of the incomplete record, which
// the guard may move between reads.
type lineParser struct {
	kind     int
	searched int // bytes of the current record already searched
	owner    *body

	// A streamed array's state.
	st        int
	depth     int
	inStr     bool
	esc       bool
	needComma bool // the last byte delivered ended an element: a record after it needs a ','

	tailNL bool // the last record delivered had no line end: a failure record needs one first

	// fast says which records parse may count without judging them:
	// none (0); those of an Ollama stream that end "done":false}
	// (fastNotDone); all but errors (fastAll), in a stream of no dialect
	// once the guard no longer searches for one.
	fast int8
}

const (
	fastNotDone = 1 + iota
	fastAll
)

// parse frames win, whose first byte is the first of the current
// (incomplete) record, calls the owner's onRecord for each record it
// completes, and returns how many bytes of win are whole records. err is
// what the upstream returned with win's last bytes: at a clean io.EOF, a
// last line without its line end that is whole JSON is a record too.
func (lp *lineParser) parse(win []byte, err error) int {
	if lp.kind == framingArray {
		return lp.parseArray(win)
	}
	n, plain := 0, int64(0)
	for from := lp.searched; ; {
		i := bytes.IndexByte(win[from:], '\n')
		if i < 0 {
			break
		}
		end := from + i
		// The common record, a JSON object alone on its line whose first
		// key is not "error", is counted here when nothing is left to
		// judge in it (see fast).
		if line := win[n:end]; lp.fast != 0 && len(line) > 2 && line[0] == '{' && line[1] == '"' && line[2] != 'e' &&
			line[len(line)-1] == '}' && (lp.fast == fastAll || bytes.HasSuffix(line, notDone)) {
			plain++
		} else {
			lp.owner.events += plain
			plain = 0
			lp.record(line)
		}
		n, from = end+1, end+1
	}
	lp.owner.events += plain
	if err == io.EOF && n < len(win) {
		if rec := trimRecord(win[n:]); len(rec) == 0 || json.Valid(rec) {
			lp.record(win[n:])
			n, lp.tailNL = len(win), true
		}
	}
	lp.searched = len(win) - n
	return n
}

// record hands a line to the owner as a record: without its CR, the RS of
// json-seq and spaces around it; a blank line is no record.
func (lp *lineParser) record(line []byte) {
	if rec := trimRecord(line); len(rec) > 0 {
		lp.owner.onRecord(rec)
	}
}

// trimRecord trims the spaces, CRs and json-seq RSs around a record.
func trimRecord(b []byte) []byte {
	i, j := 0, len(b)
	for i < j && isRecordSpace(b[i]) {
		i++
	}
	for j > i && isRecordSpace(b[j-1]) {
		j--
	}
	return b[i:j]
}

func isRecordSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == 0x1e
}

// parseArray frames a streamed JSON array by element: the '[' and the
// separators are delivered as they come, each element when it closes, and
// everything from the closing ']' on at once. A body that does not start
// with '[' is passed through unjudged.
func (lp *lineParser) parseArray(win []byte) int {
	n := 0
	for i := lp.searched; i < len(win); i++ {
		c := win[i]
		switch lp.st {
		case arrRaw:
			lp.searched = 0
			return len(win)
		case arrStart:
			switch {
			case isRecordSpace(c):
				n = i + 1
			case c == '[':
				lp.st, n = arrBetween, i+1
				lp.owner.openArray()
			default:
				lp.st = arrRaw
				lp.searched = 0
				return len(win)
			}
		case arrBetween:
			switch {
			case isRecordSpace(c):
				n = i + 1
			case c == ',':
				n, lp.needComma = i+1, false
			case c == ']':
				lp.st = arrRaw
				lp.owner.closeArray()
				lp.searched = 0
				return len(win)
			default:
				lp.st, lp.depth, lp.inStr, lp.esc = arrIn, 0, false, false
				i-- // the element's first byte, again, in arrIn
			}
		case arrIn:
			if lp.element(c) {
				lp.owner.onRecord(win[n : i+1])
				n, lp.st, lp.needComma = i+1, arrBetween, true
			} else if lp.depth == 0 && !lp.inStr && (isRecordSpace(c) || c == ',' || c == ']') && i > n {
				// A scalar element (a number, true, false, null) ends
				// before its delimiter, which is taken again between
				// elements.
				lp.owner.onRecord(win[n:i])
				n, lp.st, lp.needComma = i, arrBetween, true
				i--
			}
		}
	}
	lp.searched = len(win) - n
	return n
}

// element follows one byte of an array element and reports whether it
// closed the element: the '}' or ']' back at depth 0, or the closing quote
// of a string element.
func (lp *lineParser) element(c byte) bool {
	if lp.inStr {
		switch {
		case lp.esc:
			lp.esc = false
		case c == '\\':
			lp.esc = true
		case c == '"':
			lp.inStr = false
			return lp.depth == 0
		}
		return false
	}
	switch c {
	case '"':
		lp.inStr = true
	case '{', '[':
		lp.depth++
	case '}', ']':
		if lp.depth > 0 {
			lp.depth--
			return lp.depth == 0
		}
	}
	return false
}

// unclosed reports whether a streamed array was opened and never closed.
func (lp *lineParser) unclosed() bool {
	return lp.kind == framingArray && lp.st != arrRaw
}

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

// onRecord is called by the line parser with each complete record.
func (b *body) onRecord(rec []byte) {
	b.events++
	if b.events == 1 {
		b.statFirst.Store(time.Now().UnixNano())
	}
	if b.cfg.Dialects != nil {
		b.judge(nil, rec)
		return
	}
	switch {
	case b.dialect == dialectOllama:
		b.lines.fast = fastNotDone
	case b.dialect == 0 && b.events >= detectEvents:
		b.lines.fast = fastAll
	}
	key, _ := firstKey(rec)
	if string(key) == "error" {
		b.sawError(rec)
		return
	}
	switch {
	case b.dialect == dialectOllama:
	case b.dialect == 0 && b.events <= detectEvents && string(key) == "model" && ollamaDetect(nil, rec):
		b.dialect = dialectOllama
	default:
		return
	}
	// Ollama ends every record but the last with "done":false: one
	// comparison of the record's end spares the search.
	if !bytes.HasSuffix(rec, notDone) && ollamaTerminal(nil, rec) {
		b.sawTerminal(dialectOllama)
	}
}

var notDone = []byte(`"done":false}`)

// openArray is called when a streamed array's '[' arrives.
func (b *body) openArray() {
	if b.cfg.Dialects == nil && b.dialect == 0 {
		b.dialect = dialectJSONArray
	}
}

// closeArray is called when a streamed array's ']' arrives: its terminal.
func (b *body) closeArray() {
	b.terminal = true
	b.statTerminal.Store(true)
}

func ollamaDetect(_, data []byte) bool {
	key, _ := firstKey(data)
	return string(key) == "model" && bytes.Contains(data, []byte(`"created_at"`))
}

func ollamaError(_, data []byte) bool {
	key, _ := firstKey(data)
	return string(key) == "error"
}

// ollamaTerminal reports whether a record has "done": true at its top level
// (a tool call's arguments may hold a "done" of their own).
func ollamaTerminal(_, data []byte) bool {
	for off := 0; off < len(data); {
		i := bytes.Index(data[off:], []byte(`"done"`))
		if i < 0 {
			return false
		}
		i += off
		off = i + len(`"done"`)
		j := skipSpace(data, off)
		if j >= len(data) || data[j] != ':' {
			continue
		}
		j = skipSpace(data, j+1)
		if bytes.HasPrefix(data[j:], []byte("true")) && topLevel(data[:i]) {
			return true
		}
	}
	return false
}

// topLevel reports whether the end of b, the start of a JSON object, is
// directly inside that object: not in a string, not in a nested value.
func topLevel(b []byte) bool {
	depth, inStr, esc := 0, false, false
	for _, c := range b {
		switch {
		case esc:
			esc = false
		case inStr:
			if c == '\\' {
				esc = true
			} else if c == '"' {
				inStr = false
			}
		case c == '"':
			inStr = true
		case c == '{' || c == '[':
			depth++
		case c == '}' || c == ']':
			depth--
		}
	}
	return depth == 1 && !inStr
}

// unit names what the guard frames a body by, for its messages.
func (b *body) unit() string {
	switch {
	case b.lines == nil:
		return "event"
	case b.lines.kind == framingArray:
		return "array element"
	}
	return "JSON line"
}
