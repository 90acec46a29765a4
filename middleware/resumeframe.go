package middleware

import (
	"bytes"

	"github.com/streamguard/streamguard/resume"
	"github.com/streamguard/streamguard/sse"
)

// The framing of the resume writer: the handler's bytes are copied once,
// from its write into out, in runs between event ends; the id line goes in
// before the blank line of each event with data. Line ends are LF, CRLF or
// CR, as the SSE spec has them.
//
// State kept between writes (all in out's terms):
//   - out[evAt:] is the start of the event not yet complete;
//   - carry is how many bytes of its current line, not yet ended, are at the
//     end of out;
//   - cr: out ends with a CR that ended a line, perhaps the first half of a
//     CRLF; ending says that line was the blank line of an event with data,
//     the event to be recorded once the next byte shows whether an LF
//     belongs to it.
type framing struct {
	out       []byte
	evAt      int
	carry     int
	hasData   bool
	cr        bool
	ending    bool
	idAt      int // where the id line of the event ending begins
	seq       uint64
	idLine    []byte // seq's: idPrefix, seq in decimal, LF
	prefixLen int
	started   bool // past the stream's start, and a byte-order mark there
	bomN      int  // bytes of a byte-order mark seen at the start
}

// bom is the UTF-8 byte-order mark an SSE parser drops at a stream's start.
const bom = "\xEF\xBB\xBF"

// skipBOM takes a byte-order mark at the stream's start out of the first
// event, as an SSE parser does (the first event is then a data event like
// the others, stored and given its id), even split across writes: the mark
// is sent ahead of it, not stored, so that the client drops it as the
// handler's client would (were it dropped here, a second mark would be the
// first bytes the client sees, and drop in its place). Bytes that only
// began like one go on as they were.
func (f *framing) skipBOM(p []byte) []byte {
	for !f.started && len(p) > 0 {
		if p[0] != bom[f.bomN] {
			f.started = true
			if f.bomN > 0 {
				p = append([]byte(bom[:f.bomN]), p...)
			}
			break
		}
		f.bomN++
		p = p[1:]
		if f.started = f.bomN == len(bom); f.started {
			f.out = append(f.out, bom...)
			f.evAt = len(f.out)
		}
	}
	return p
}

// frame copies p into out, recording each complete event with data. At
// the end of the response (final), a CR at the end of out ends its line.
func (w *resumeWriter) frame(p []byte, final bool) {
	f := &w.f
	if !f.started {
		p = f.skipBOM(p)
	}
	from, ls := 0, 0 // p[:from] is in out; the current line begins at p[ls]
	if f.cr {
		if len(p) == 0 && !final {
			return
		}
		f.cr = false
		if len(p) > 0 && p[0] == '\n' { // the second half of a CRLF
			f.out = append(f.out, '\n')
			from, ls = 1, 1
			if f.evAt == len(f.out)-1 {
				f.evAt++ // it ended a comment's blank line
			}
		}
		if f.ending {
			w.record()
		}
	}
	crFree := bytes.IndexByte(p[ls:], '\r') < 0
	for i := ls; i < len(p); {
		if crFree && f.carry == 0 && i == ls && p[i] != '\n' {
			// At a line start, with LF line ends: skip to the blank line,
			// at once when the line is the event's last.
			if k := bytes.IndexByte(p[i:], '\n'); k >= 0 && i+k+1 < len(p) && p[i+k+1] == '\n' {
				f.hasData = f.hasData || isDataField(p[i:i+k])
				ls, i = i+k+1, i+k+1
			} else if k := bytes.Index(p[i:], []byte("\n\n")); k >= 0 {
				f.hasData = f.hasData || hasDataLine(p[i:i+k+1])
				ls, i = i+k+1, i+k+1
			}
		}
		var k int
		if crFree {
			k = bytes.IndexByte(p[i:], '\n')
		} else {
			k = bytes.IndexAny(p[i:], "\r\n")
		}
		if k < 0 {
			break
		}
		j := i + k // the line ends at p[j]
		end := j + 1
		held := false
		if p[j] == '\r' {
			switch {
			case end < len(p) && p[end] == '\n':
				end++
			case end == len(p) && !final:
				held = true // perhaps half a CRLF
			}
		}
		switch {
		case f.carry == 0 && j == ls: // a blank line: the event is complete
			// The event's size as the client's guard counts it: the blank
			// line as one byte, and the id line it gets.
			if size := len(f.out) - f.evAt + ls - from + 1; size+len(f.idLine)+1 > sse.DefaultMaxEventBytes && f.oversized(size) {
				w.tooLarge = true // neither stored nor sent: the writer fails the stream
				return
			}
			if f.hasData {
				f.out = append(f.out, p[from:ls]...)
				f.idAt = len(f.out)
				f.appendID()
				f.out = append(f.out, p[ls:end]...)
				from, f.ending = end, true
				if !held {
					w.record()
				}
			} else { // a comment or retry: sent, not stored
				f.out = append(f.out, p[from:end]...)
				f.out = append(f.out[:f.evAt], dropIDLines(f.out[f.evAt:])...)
				from, f.evAt = end, len(f.out)
				if f.evAt >= sendBytes {
					w.sync()
				}
			}
			f.hasData = false
		case f.isDataLine(p[ls:j]):
			f.hasData = true
		}
		f.carry, f.cr = 0, held
		ls, i = end, end
	}
	f.out = append(f.out, p[from:]...)
	f.carry += len(p) - ls
}

// isDataLine reports whether a line, whose first f.carry bytes are at the
// end of out and the rest are rest, is a data field.
func (f *framing) isDataLine(rest []byte) bool {
	if f.carry == 0 {
		return isDataField(rest)
	}
	var head [5]byte
	n := copy(head[:], f.out[len(f.out)-f.carry:])
	n += copy(head[n:], rest)
	return isDataField(head[:n])
}

// isDataField reports whether an SSE line (without its line end, or its
// first five bytes) is a data field.
func isDataField(line []byte) bool {
	return len(line) >= 4 && string(line[:4]) == "data" && (len(line) == 4 || line[4] == ':')
}

// dropIDLines turns the id fields of a block without data into empty
// comments, in place: they would set the client's last event id to one
// that is not this stream's, and a resume from it would fail. Each keeps
// its line end (a line removed whole could join the CR before it and the
// LF after it into one CRLF, and take the block's blank line with it).
// Lines end with CR, LF or CRLF.
func dropIDLines(b []byte) []byte {
	out := b[:0]
	for len(b) > 0 {
		end := len(b)
		if k := bytes.IndexAny(b, "\r\n"); k >= 0 {
			end = k + 1
			if b[k] == '\r' && end < len(b) && b[end] == '\n' {
				end++
			}
		}
		line := bytes.TrimRight(b[:end], "\r\n")
		if string(line) == "id" || bytes.HasPrefix(line, []byte("id:")) {
			out = append(out, ':')
			out = append(out, b[len(line):end]...)
		} else {
			out = append(out, b[:end]...)
		}
		b = b[end:]
	}
	return out
}

// hasDataLine reports whether LF-ended lines hold a data field.
func hasDataLine(lines []byte) bool {
	for len(lines) > 0 {
		k := bytes.IndexByte(lines, '\n')
		if isDataField(lines[:k]) {
			return true
		}
		lines = lines[k+1:]
	}
	return false
}

// oversized reports whether an event of size bytes without an id line is
// larger than sse.DefaultMaxEventBytes with the one it gets, if it has data.
func (f *framing) oversized(size int) bool {
	if f.hasData {
		size += len(f.idLine)
		if bytes.Count(f.idLine[f.prefixLen:], []byte("9")) == len(f.idLine)-f.prefixLen-1 {
			size++ // no number yet, or all nines: the next is a digit longer
		}
	}
	return size > sse.DefaultMaxEventBytes
}

// appendID appends the id line of the next event.
func (f *framing) appendID() {
	f.seq++
	f.idLine = nextID(f.idLine, f.prefixLen)
	f.out = append(f.out, f.idLine...)
}

// nextID turns an id line (a prefix of n bytes, a decimal number, empty for
// zero, and an LF) into the next one's.
func nextID(line []byte, n int) []byte {
	for i := len(line) - 2; i >= n; i-- {
		if line[i] < '9' {
			line[i]++
			return line
		}
		line[i] = '0'
	}
	// All nines, or no number yet: one digit more.
	zeros := len(line) - 1 - n
	line = append(line[:n], '1')
	for range zeros {
		line = append(line, '0')
	}
	return append(line, '\n')
}

// record adds the event ending at the end of out to the batch to store:
// its bytes up to its id line (the store keeps them without it; see
// resume.Event).
func (w *resumeWriter) record() {
	f := &w.f
	data := f.out[f.evAt:f.idAt:f.idAt]
	if w.batchLen+len(data) > storeBytes {
		w.store() // the batch is full
	}
	w.batch = append(w.batch, resume.Event{Seq: f.seq, Data: data})
	w.batchLen += len(data)
	f.evAt, f.ending = len(f.out), false
	if f.evAt >= sendBytes {
		w.sync()
	}
}
