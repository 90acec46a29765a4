package sse

import (
	"bytes"
	"encoding/json"
	"io"
)

// rs is the record separator of a JSON text sequence (RFC 7464).
const rs = 0x1e

// parseSeq frames a JSON text sequence (RFC 7464) by record: from an RS to
// the line end after its JSON text, which may span lines (a pretty-printed
// object), so that a record is judged whole, never line by line. A record
// ends at the first LF after its value has closed (depth 0, outside a
// string); an RS before that ends it cut short (a record the RFC has its
// parsers drop, judged as the text it is). Text before any RS is framed
// the same way. At a clean io.EOF, a last record whose value has closed is
// whole without its LF.
func (lp *lineParser) parseSeq(win []byte, err error) int {
	n := 0
	maxEvent := lp.owner.maxEvent
	for i := lp.searched; i < len(win); i++ {
		c := win[i]
		if i+1-n > maxEvent && c != rs { // an RS begins the next record
			lp.searched = len(win) - n
			return n // too large: the guard ends the stream (see overflow)
		}
		switch {
		case c == rs:
			if lp.seqOpen && lp.seqValue {
				lp.record(win[n:i]) // cut short by the next record's RS
			}
			if lp.seqOpen || n < i {
				n = i // what came before the RS (spaces, or a record) is whole
			}
			lp.openSeq()
		case !lp.seqOpen:
			if isRecordSpace(c) {
				n = i + 1 // between records
				continue
			}
			lp.openSeq() // text without its RS: a record all the same
			lp.seqByte(c)
		case c == '\n' && lp.seqValue && lp.depth == 0 && !lp.inStr:
			lp.record(win[n : i+1])
			n, lp.seqOpen = i+1, false
		default:
			lp.seqByte(c)
			if lp.inStr && !lp.esc {
				// Inside a string only a quote, a backslash or an RS
				// matters: the bytes before the next one are skipped,
				// up to the cap.
				lim := len(win)
				if lim-n > maxEvent {
					lim = n + maxEvent
				}
				if i+1 < lim {
					i += strRun(win[i+1 : lim])
				}
			}
		}
	}
	if err == io.EOF && lp.seqOpen && !lp.seqValue {
		// An RS with no text after it (spaces at most): an empty record,
		// which the RFC's parsers skip.
		n, lp.seqOpen = len(win), false
	}
	if err == io.EOF && lp.seqOpen && lp.seqValue && lp.depth == 0 && !lp.inStr && n < len(win) {
		if rec := trimRecord(win[n:]); json.Valid(rec) {
			lp.record(win[n:])
			n, lp.tailNL, lp.seqOpen = len(win), true, false
		}
	}
	lp.searched = len(win) - n
	return n
}

// strRun returns how many of b's first bytes are neither a quote, a
// backslash nor an RS.
func strRun(b []byte) int {
	k := len(b)
	if q := bytes.IndexByte(b, '"'); q >= 0 {
		k = q
	}
	if e := bytes.IndexByte(b[:k], '\\'); e >= 0 {
		k = e
	}
	if r := bytes.IndexByte(b[:k], rs); r >= 0 {
		k = r
	}
	return k
}

// openSeq starts a record.
func (lp *lineParser) openSeq() {
	lp.seqOpen, lp.seqValue, lp.depth, lp.inStr, lp.esc = true, false, 0, false, false
}

// seqByte follows one byte of a record's value.
func (lp *lineParser) seqByte(c byte) {
	if !lp.seqValue {
		if isRecordSpace(c) || c == bom[0] || c == bom[1] || c == bom[2] {
			return
		}
		lp.seqValue = true
	}
	lp.element(c)
}
