package main

import (
	"fmt"
	"io"
	"os"
	"unicode"
	"unicode/utf8"
)

// escapeWriter shows what a server sent in a form a terminal cannot act on:
// control characters (C0 but tab and line feed, DEL, C1), the Unicode line
// separators and bidirectional controls are written as \u escapes, and bytes
// that are not UTF-8 as \x escapes. A server's body or event could otherwise
// move the cursor, set the window's title, or rewrite what the probe printed
// before it (ESC, CR, OSC). The \u form keeps the probe's JSON lines valid
// JSON. A character split between two writes is held until the next one;
// Flush writes what is held.
type escapeWriter struct {
	w    io.Writer
	held []byte // the start of a character split by the last write
	buf  []byte
}

func (e *escapeWriter) Write(p []byte) (int, error) {
	n := len(p)
	if len(e.held) > 0 {
		p = append(e.held, p...)
		e.held = nil
	}
	out := e.buf[:0]
	for i := 0; i < len(p); {
		c := p[i]
		if c >= 0x20 && c < 0x7f || c == '\n' || c == '\t' {
			out = append(out, c)
			i++
			continue
		}
		if !utf8.FullRune(p[i:]) {
			e.held = append([]byte(nil), p[i:]...) // p may be the caller's
			break
		}
		r, size := utf8.DecodeRune(p[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			out = fmt.Appendf(out, `\x%02x`, c)
		case unicode.IsControl(r) || r == '\u2028' || r == '\u2029' || unicode.Is(unicode.Bidi_Control, r):
			out = fmt.Appendf(out, `\u%04x`, r)
		default:
			out = append(out, p[i:i+size]...)
		}
		i += size
	}
	e.buf = out[:0]
	if _, err := e.w.Write(out); err != nil {
		return 0, err
	}
	return n, nil
}

// Flush writes the bytes of a character the last write split, escaped as
// the bytes they are: no write will complete them.
func (e *escapeWriter) Flush() error {
	held := e.held
	e.held = nil
	var out []byte
	for _, c := range held {
		out = fmt.Appendf(out, `\x%02x`, c)
	}
	if len(out) == 0 {
		return nil
	}
	_, err := e.w.Write(out)
	return err
}

// terminal is isTerminal; tests replace it.
var terminal = isTerminal

func isTerminal(w io.Writer) bool {
	if rw, ok := w.(*redactingWriter); ok {
		w = rw.w
	}
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
