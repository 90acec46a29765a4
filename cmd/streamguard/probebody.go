package main

import (
	"bytes"
	"encoding/json"
	"io"
	"strings"
)

// maxJSONBody bounds the body a --json probe prints in its "body" line;
// the rest is counted, not printed.
const maxJSONBody = 1 << 20

// body prints a body that is not read as a stream, with --json as one
// line {"type": "body", "data": "...", "truncated": true if cut}, so that
// every line stays one JSON object; otherwise as it came. It returns the
// body's bytes.
func (p *printer) body(r io.Reader) (int64, error) {
	if !p.json {
		return io.Copy(p.w, r)
	}
	var buf bytes.Buffer
	n, err := io.Copy(&buf, io.LimitReader(r, maxJSONBody))
	var rest int64
	if err == nil {
		rest, err = io.Copy(io.Discard, r)
	}
	v := map[string]any{"type": "body", "data": buf.String()} // what came, even when the read failed
	if rest > 0 {
		v["truncated"] = true
	}
	p.line(p.w, v)
	return n + rest, err
}

// validHeader reports whether name is an HTTP field name (RFC 9110 token)
// and value holds no control character but a tab: what net/http would
// refuse to send, as a failure of the network.
func validHeader(name, value string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`"(),/:;<=>?@[\]{}`, c) >= 0 {
			return false
		}
	}
	for i := 0; i < len(value); i++ {
		if c := value[i]; (c < ' ' && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}

// printer writes the probe's output, for people or, with json, for scripts.
type printer struct {
	w, errw io.Writer
	json    bool
	live    bool      // a live line is on stderr
	red     *redactor // what w and errw cut, cut from a JSON line's strings before they are escaped
}

func (p *printer) line(w io.Writer, v map[string]any) {
	for k, x := range v {
		if s, ok := x.(string); ok && p.red != nil {
			v[k] = string(p.red.scrub([]byte(s)))
		}
	}
	b, _ := json.Marshal(v)
	w.Write(append(b, '\n'))
}
