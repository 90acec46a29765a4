package sse

import "bytes"

// openArray is called when a streamed array's '[' arrives.
func (b *body) openArray() {
	if b.cfg.Dialects == nil && b.dialect == 0 {
		b.dialect = dialectJSONArray
	}
}

// closeArray is called when a streamed array's ']' arrives: its terminal.
func (b *body) closeArray() {
	b.terminal = true
	b.statDialect.Store(int32(b.dialect))
	b.statTerminal.Store(true)
}

func ollamaDetect(_, data []byte) bool {
	key, _ := firstKey(data)
	return string(key) == "model" && bytes.Contains(data, []byte(`"created_at"`))
}

func ollamaError(_, data []byte) bool {
	key, rest := firstKey(data)
	return string(key) == "error" && isErrorValue(rest)
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
	case b.lines.kind == framingSeq:
		return "JSON text"
	}
	return "JSON line"
}

// aUnit is unit with its article.
func (b *body) aUnit() string {
	u := b.unit()
	if u[0] == 'J' {
		return "a " + u
	}
	return "an " + u
}
