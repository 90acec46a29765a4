package gatewaytest

import (
	"bytes"
	"mime"
	"strings"

	"github.com/streamguard/streamguard/sse"
)

// framing is how the gateway's stream faults tell a response's events apart.
type framing int

const (
	// framingBlocks: a block of lines ended by an empty line, with line ends
	// LF, CR or CRLF, counts when it has a line with content.
	framingBlocks framing = iota
	// framingSSE (text/event-stream): a block counts only when it has a data
	// field ("data" or "data:..."), since an SSE client dispatches no other:
	// comments (": keep-alive"), retry-only, id-only and event-only blocks
	// are not events.
	framingSSE
	// framingLines (JSON lines, or a JSON body streamed a line at a time):
	// each line with content, ended by LF, counts.
	framingLines
)

// framingOf returns the framing of a response of Content-Type ct.
func framingOf(ct string) framing {
	switch {
	case sse.IsJSONLines(ct) || strings.HasPrefix(ct, "application/json"):
		return framingLines
	}
	if mt, _, err := mime.ParseMediaType(ct); err == nil && mt == "text/event-stream" {
		return framingSSE
	}
	return framingBlocks
}

// eventScanner finds where a response's events end, a byte at a time, across
// writes. Line ends are those of the WHATWG event-stream format: LF, CR or
// CRLF, so an empty line is any second line end in a row ("\n\n", "\r\r",
// "\r\n\r\n", "\n\r\n", "\r\n\n", ...).
type eventScanner struct {
	framing framing
	cr      bool    // the last byte was a CR: an LF next is part of its line end
	pending bool    // an event ended at that CR; whether an LF belongs to it is still to see
	line    int     // bytes in the current line
	name    [5]byte // the first bytes of the current line
	content bool    // the current block (framingLines: line) is an event so far
}

// step reads c and reports whether an event ended just before c (one ended
// by a CR that no LF follows) or with c.
func (s *eventScanner) step(c byte) (before, with bool) {
	if s.framing == framingLines {
		switch c {
		case '\n':
			with, s.content = s.content, false
		case '\r':
		default:
			s.content = true
		}
		return false, with
	}
	if s.cr {
		s.cr = false
		if s.pending {
			s.pending = false
			if c == '\n' {
				return false, true
			}
			before = true
		} else if c == '\n' {
			return false, false // the LF of a CRLF
		}
	}
	switch c {
	case '\r', '\n':
		s.cr = c == '\r'
		if s.line > 0 { // a line ends
			s.content = s.content || s.counts()
			s.line = 0
			return before, false
		}
		ended := s.content // an empty line ends the block
		s.content = false
		if ended && c == '\r' {
			s.pending = true
			return before, false
		}
		return before, ended
	}
	if s.line < len(s.name) {
		s.name[s.line] = c
	}
	s.line++
	return before, false
}

// counts reports whether the line that just ended makes its block an event.
func (s *eventScanner) counts() bool {
	if s.framing != framingSSE {
		return true
	}
	return (s.line == 4 && string(s.name[:4]) == "data") || (s.line >= 5 && string(s.name[:]) == "data:")
}

// halfEvent returns the first half of the event at the start of p (with
// framingLines, of the line), strictly shorter than the event and never
// holding the empty line that would end it: at least one byte when p has
// any, nil when p is empty. p starts where an event ended.
func halfEvent(p []byte, f framing) []byte {
	if len(p) == 0 {
		return nil
	}
	s := eventScanner{framing: f}
	end := len(p)
	for i, c := range p {
		before, with := s.step(c)
		if before {
			end = i
			break
		}
		if with {
			end = i + 1
			break
		}
	}
	return bytes.Clone(p[:max(1, end/2)])
}
