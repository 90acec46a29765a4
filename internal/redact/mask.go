package redact

import "bytes"

// Mask overwrites, in place, every one of secrets (as Secrets returns them)
// of minOpaque bytes or more, and every well-known key shape (as Shapes
// finds them), in b with a mask of the same length: Marker, followed by
// '*' for a longer value. It serves bytes that are passed on as they came
// (an error event of a stream, which the guard frames without copying):
// their length, and every offset into them, stay as they were. A shorter
// secret (a cookie's "true", a parameter's "1024") could be any word of
// them, or their syntax ("data", a JSON literal): Mask leaves it, as a
// message scrubbed of it would read wrong but these bytes would break. A
// mask found again as a shape's token ("Bearer REDACTED***") is written
// over with itself. It reports whether it changed b.
func Mask(b []byte, secrets []string) bool {
	changed := false
	for _, sec := range secrets { // longest first: a shorter one inside it is gone with it
		if len(sec) < minOpaque {
			break
		}
		for i := 0; ; {
			k := bytes.Index(b[i:], []byte(sec))
			if k < 0 {
				break
			}
			fill(b[i+k : i+k+len(sec)])
			i, changed = i+k+len(sec), true
		}
	}
	if !bytes.Contains(b, []byte(keyPrefix)) && !hasScheme(b) {
		return changed
	}
	s := string(b) // the error path: one copy to find the shapes in
	for i := 0; i < len(s); {
		if start, end := shapeAt(s, i); end > start {
			fill(b[start:end])
			i, changed = end, true
			continue
		}
		i++
	}
	return changed
}

// hasScheme reports whether b may hold an auth scheme's token (see
// shapeAt): the cheap test before a search.
func hasScheme(b []byte) bool {
	lower := bytes.ToLower(b)
	for _, sc := range schemes {
		if bytes.Contains(lower, []byte(sc+" ")) {
			return true
		}
	}
	return false
}

// fill writes the mask of a removed value (minShape bytes or more) over
// it.
func fill(v []byte) {
	n := copy(v, Marker)
	for i := n; i < len(v); i++ {
		v[i] = '*'
	}
}
