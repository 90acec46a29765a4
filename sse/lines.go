package sse

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"time"
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

// IsJSONSeq reports whether a Content-Type is application/json-seq (RFC
// 7464), whose records each begin with an RS: one may begin anywhere, even
// inside a record, which its parsers then drop as cut short.
func IsJSONSeq(ct string) bool { return linesKind(ct) == framingSeq }

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

	// lead: a byte-order mark ahead of the first JSON line, held with it
	// and no part of its size (see body.lead); begun: a line was whole.
	lead  int
	begun bool

	// A JSON text sequence's state (seq.go); depth, inStr and esc follow
	// its record's value.
	seqOpen  bool // inside a record
	seqValue bool // its value has begun

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
	switch lp.kind {
	case framingArray:
		return lp.parseArray(win)
	case framingSeq:
		return lp.parseSeq(win, err)
	}
	n, plain := 0, int64(0)
	if !lp.begun && bytes.HasPrefix(win, []byte(bom)) {
		lp.lead = len(bom)
	}
	for from := lp.searched; ; {
		i := bytes.IndexByte(win[from:], '\n')
		if i < 0 {
			break
		}
		end := from + i
		if end+1-n-lp.lead > lp.owner.maxEvent {
			break // too large: the guard ends the stream (see overflow)
		}
		// The common record, a JSON object alone on its line whose first
		// key is not "error", is counted here when nothing is left to
		// judge in it (see fast).
		if line := win[n:end]; lp.fast != 0 && len(line) > 2 && line[0] == '{' && line[1] == '"' && line[2] != 'e' &&
			line[len(line)-1] == '}' && (lp.fast == fastAll || endsNotDone(line)) {
			plain++
		} else {
			lp.owner.events += plain
			plain = 0
			lp.record(line)
		}
		n, from, lp.begun, lp.lead = end+1, end+1, true, 0
	}
	lp.owner.events += plain
	if err == io.EOF && n < len(win) && len(win)-n-lp.lead <= lp.owner.maxEvent {
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

// trimRecord trims the spaces, CRs and json-seq RSs around a record, and a
// byte-order mark before it (a stream's first record may start with one).
func trimRecord(b []byte) []byte {
	i, j := 0, len(b)
	for i < j && isRecordSpace(b[i]) {
		i++
	}
	if bytes.HasPrefix(b[i:j], []byte(bom)) {
		for i += len(bom); i < j && isRecordSpace(b[i]); i++ {
		}
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
			case isRecordSpace(c), c == bom[0] || c == bom[1] || c == bom[2]:
				n = i + 1 // spaces, and a byte-order mark (in any reads) before the '['
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
			if i+1-n > lp.owner.maxEvent {
				lp.searched = len(win) - n
				return n // too large: the guard ends the stream (see overflow)
			}
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

// onRecord is called by the line parser with each complete record.
func (b *body) onRecord(rec []byte) {
	b.events++
	if b.events == 1 {
		b.statFirst.Store(time.Now().UnixNano())
	}
	if b.cfg.Dialects != nil {
		b.judge(nil, rec)
		if b.errEvent {
			b.maskError(rec)
		}
		return
	}
	switch {
	case b.dialect == dialectOllama:
		b.lines.fast = fastNotDone
	case b.dialect == 0 && b.events >= detectEvents:
		b.lines.fast = fastAll
	}
	key, rest := firstKey(rec)
	if string(key) == "error" && isErrorValue(rest) {
		b.sawError(rec)
		b.maskError(rec)
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
	if !endsNotDone(rec) && ollamaTerminal(nil, rec) {
		b.sawTerminal(dialectOllama)
	}
}

var notDone = []byte(`"done":false}`)

// The last 13 bytes of every Ollama record but the last, `"done":false}`,
// as two little-endian words that overlap by three bytes.
var (
	notDoneHead = binary.LittleEndian.Uint64(notDone[:8])
	notDoneTail = binary.LittleEndian.Uint64(notDone[5:])
)

// endsNotDone reports whether line ends with `"done":false}`: two loads
// and two comparisons, once per line on the fast path.
func endsNotDone(line []byte) bool {
	n := len(line)
	return n >= 13 && binary.LittleEndian.Uint64(line[n-13:]) == notDoneHead &&
		binary.LittleEndian.Uint64(line[n-8:]) == notDoneTail
}
