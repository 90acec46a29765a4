package sse

import (
	"bytes"
	"strings"
)

// parser follows SSE framing at the byte level (WHATWG HTML, "Parsing an
// event stream"): lines end in LF, CRLF or a lone CR; a blank line ends an
// event; a line starting with ':' is a comment; "data", "event" and "id" are
// the fields that matter here. It never copies: it records the offsets of the
// current event's fields relative to the event's first byte, so that the
// guard may move an incomplete event to the front of a buffer between reads
// and the parse goes on where it stopped.
//
// Lines are found with one vectorised search for LF while the stream shows
// no CR; the first CR at a line's end (CRLF), or in bytes with no LF after
// them (lone CRs), switches the stream to a search for both. Every byte is
// so searched once, not twice. The one case this leaves to the end of the
// stream is a lone CR inside a line that an LF ends: the bytes up to each LF
// blank line are still handed out whole (that is an event boundary in every
// framing), and at the end of the stream the incomplete event is framed
// again by every line end; only the judging of events split by such CRs
// (a stream that mixes lone CRs into LF lines, which no JSON can produce)
// sees them as one.
type parser struct {
	scanned  int  // bytes of the current event already scanned (whole lines)
	searched int  // bytes of the current event already searched for line ends
	skipLF   bool // the last line ended in a CR at the end of the input: a following LF belongs to it
	sawCR    bool // the stream has CRs: find line ends the slower way
	// follow: a resumer follows the stream, and must see its events as
	// its consumer will: a lone CR within an LF-ended line ends a line
	// too, and switches the rest of the stream to the CR-aware search.
	// Without a resumer, only the judging of such events is at stake (see
	// above), and the LF search does not look within lines.
	follow  bool
	bomDone bool // the start of the stream was checked for a BOM
	started bool // the current event has at least one non-blank line
	typS    int  // the event's type value, [typS, typE); typE == 0: none
	typE    int
	dataS   int // the first data value, [dataS, dataE)
	dataE   int
	dataN   int // data lines in the event
	idS     int // the id value, [idS, idE); idSet says whether one was seen
	idE     int
	idSet   bool
	bom     int   // 3 while the current event is the first and starts with the stream's BOM
	owner   *body // its onEvent is called with each complete event's bytes
}

func (p *parser) resetEvent() {
	p.scanned, p.searched, p.started, p.bom = 0, 0, false, 0
	p.typE, p.dataN, p.idSet = 0, 0, false
}

// bom is the UTF-8 byte-order mark an SSE parser drops at a stream's start.
const bom = "\xef\xbb\xbf"

// lead returns the bytes of a byte-order mark at the start of the bytes
// held back, ahead of the first event or record: no part of its size.
func (b *body) lead() int {
	if b.lines != nil {
		return b.lines.lead
	}
	return b.p.bom
}

// parse scans win, whose first byte is the first byte of the current
// (incomplete) event, calls owner.onEvent for every event it completes, and
// returns the offset just past the last complete event: win[:n] may be
// delivered, win[n:] is the start of an event still incomplete. It needs at
// least 3 bytes (or final) to check the stream's start for a BOM.
func (p *parser) parse(win []byte, final bool) (n int) {
	ev, pos := 0, p.scanned     // the current event's start in win; where the search goes on
	if !p.bomDone || p.skipLF { // the first read, or a CR at the end of the last
		var wait bool
		if pos, ev, n, wait = p.resume(win, final); wait {
			return 0
		}
	}
	// [pos, from) is the start of an incomplete line already searched for
	// line ends by an earlier call: searching it again would make a long
	// line arriving in small reads cost quadratic time.
	from := max(pos, p.searched)
	pos, ev, n = p.scan(win, pos, from, ev, n)
	if final && !p.sawCR && bytes.IndexByte(win[ev:], '\r') >= 0 {
		// The stream ends inside an event whose LF-terminated lines hold
		// a lone CR: frame that event again by every line end, so that an
		// event the CR completed is delivered.
		bom := p.bom
		p.resetEvent()
		p.sawCR, p.bom = true, bom
		pos, ev, n = p.scan(win, ev+bom, ev+bom, ev, n)
	}
	p.scanned = pos - ev
	p.searched = len(win) - ev
	return n
}

// scan frames the lines of win from pos (searching for line ends from
// from), calls owner.onEvent for each event completed, and returns where it
// stopped, the start of the current event and the bytes of win that are
// whole events. It is the hot loop: one call per parse.
//
// An event longer than the owner's maxEvent (its lines with their line
// ends, and one byte for the blank line that ends it) stops the scan at its
// first byte, undelivered: the guard then holds more than maxEvent bytes
// back, which ends the stream as event_too_large (see overflow). So the cap
// is the event's size, not that of the part of it a read left incomplete.
func (p *parser) scan(win []byte, pos, from, ev, n int) (int, int, int) {
	for pos < len(win) {
		s := max(pos, from)
		var end, next int // the line is win[pos:end]; the next one starts at next
		if !p.sawCR {
			// Lines end in LF until a CR shows up: at the end of a line
			// (CRLF), or where no LF follows (lone CRs). Either switches
			// the rest of the stream to the CR-aware search, from the start
			// of this line.
			i := bytes.IndexByte(win[s:], '\n')
			if i < 0 {
				if bytes.IndexByte(win[s:], '\r') >= 0 {
					p.sawCR, from = true, pos
					continue
				}
				break
			}
			end = s + i
			if end > pos && (win[end-1] == '\r' || (p.follow && bytes.IndexByte(win[s:end], '\r') >= 0)) {
				p.sawCR, from = true, pos
				continue
			}
			next = end + 1
			// The common event, a single "data: {...}" line and a blank
			// line, is counted here when the guard does not need to see it.
			if pos == ev && next < len(win) && win[next] == '\n' && end-pos > 5 &&
				win[pos+4] == ':' && win[pos] == 'd' && win[pos+1] == 'a' && win[pos+2] == 't' && win[pos+3] == 'a' {
				vs := pos + 5
				if win[vs] == ' ' {
					vs++
				}
				if p.owner.plainEvent(win[vs:end]) {
					if next+1-ev-p.bom > p.owner.maxEvent {
						return ev, ev, n // too large (see above)
					}
					p.owner.events++
					pos = next + 1
					ev, n = pos, pos
					continue
				}
			}
		} else if end, next = p.crLineEnd(win, s); next == 0 {
			break
		}
		if end == pos {
			// A blank line: the event is complete.
			if p.started {
				// The blank line counts as one byte, a CRLF too: its LF
				// may come in the next read, after the event is whole.
				if next-ev-p.bom-(next-end-1) > p.owner.maxEvent {
					return ev, ev, n
				}
				p.owner.onEvent(win[ev:next])
			}
			ev, n = next, next
			p.resetEvent()
			pos = next
			continue
		}
		p.started = true
		p.field(win[ev:], pos-ev, end-ev)
		pos = next
		// Fast path: a blank line right after a field line.
		if !p.sawCR && pos < len(win) && win[pos] == '\n' {
			if pos+1-ev-p.bom > p.owner.maxEvent {
				return ev, ev, n
			}
			pos++
			p.owner.onEvent(win[ev:pos])
			ev, n = pos, pos
			p.resetEvent()
		}
	}
	return pos, ev, n
}

// resume returns where parse takes up win: pos, past a leading BOM and the
// LF of a CRLF split by the last read; ev and n, the start of the current
// event and the bytes already whole (past that LF when it closed an event).
// wait says that win may be the start of a BOM split across reads.
func (p *parser) resume(win []byte, final bool) (pos, ev, n int, wait bool) {
	pos = p.scanned
	if !p.bomDone {
		if len(win) < 3 && !final && strings.HasPrefix(bom, string(win)) {
			return 0, 0, 0, true
		}
		p.bomDone = true
		if string(win[:min(len(win), 3)]) == bom {
			pos, p.bom = 3, 3
		}
	}
	if p.skipLF && pos < len(win) {
		p.skipLF = false
		if win[pos] == '\n' {
			pos++
			if !p.started {
				// The LF ended the blank line that closed the last
				// event: it belongs with what was delivered.
				ev, n = pos, pos
			}
		}
	}
	return pos, ev, n, false
}

// crLineEnd finds the end of the line searched from s in a stream that
// uses CRs: the line ends at end, and the next one starts at next (0: no
// line end yet). A CR at the very end of win completes its line, and the
// LF that may follow in the next read is skipped then.
func (p *parser) crLineEnd(win []byte, s int) (end, next int) {
	lim := len(win)
	if i := bytes.IndexByte(win[s:], '\n'); i >= 0 {
		lim = s + i
	}
	end = lim
	if j := bytes.IndexByte(win[s:lim], '\r'); j >= 0 {
		end = s + j
	}
	switch {
	case end == len(win):
		return end, 0
	case win[end] == '\n':
		return end, end + 1
	case end+1 < len(win):
		if win[end+1] == '\n' {
			return end, end + 2
		}
		return end, end + 1
	}
	p.skipLF = true
	return end, end + 1
}

// field records the field of the line ev[s:e] (offsets relative to the event).
func (p *parser) field(ev []byte, s, e int) {
	line := ev[s:e]
	if len(line) == 0 {
		return
	}
	// The fields that matter, spelled the common way, without a search.
	if len(line) >= 5 && line[4] == ':' && line[0] == 'd' && line[1] == 'a' && line[2] == 't' && line[3] == 'a' {
		vs := s + 5
		if vs < e && ev[vs] == ' ' {
			vs++
		}
		p.data(vs, e)
		return
	}
	if line[0] == ':' {
		return // a comment
	}
	name, vs := line, e // no colon: the whole line is the name, the value is empty
	if c := bytes.IndexByte(line, ':'); c >= 0 {
		name = line[:c]
		vs = s + c + 1
		if vs < e && ev[vs] == ' ' {
			vs++
		}
	}
	switch string(name) {
	case "data":
		p.data(vs, e)
	case "event":
		p.typS, p.typE = vs, e
	case "id":
		if bytes.IndexByte(ev[vs:e], 0) < 0 {
			p.idS, p.idE, p.idSet = vs, e, true
		}
	case "retry":
		if o := p.owner; o != nil && o.rs != nil {
			rs := o.rs
			rs.setRetry(ev[vs:e])
		}
	}
}

func (p *parser) data(vs, e int) {
	if p.dataN == 0 {
		p.dataS, p.dataE = vs, e
	}
	p.dataN++
}
