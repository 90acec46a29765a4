package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net/url"
	"slices"
	"strings"
	"sync"

	"github.com/streamguard/streamguard/internal/redact"
)

// redactor cuts the secrets it was given (API keys, credential headers,
// the request's secrets as the library finds them, in its query and
// userinfo too) from everything the probe prints, whole and in the forms a
// header carries them ("Bearer <key>", "Api-Key <key>", in any case).
type redactor struct {
	mu      sync.Mutex
	secrets [][]byte
}

// redacted is the library's own marker, so that the probe's output reads the
// same whether the library or the probe cut a secret.
const redacted = redact.Marker

func (r *redactor) add(secret string) {
	secret = strings.TrimSpace(secret)
	for _, scheme := range []string{"Bearer ", "Api-Key ", "Basic ", "Token "} {
		// An auth scheme is read in any case (RFC 9110): "bearer KEY".
		if len(secret) >= len(scheme)+4 && strings.EqualFold(secret[:len(scheme)], scheme) {
			r.add(secret[len(scheme):])
		}
	}
	if len(secret) < 4 {
		return // too short to cut without mangling the output; not a real key
	}
	// And as a server may echo it: in a JSON string ('/' as "\/", '<' as
	// "\u003c"), in a URL it built (percent-encoded).
	j, _ := json.Marshal(secret)
	js := string(j[1 : len(j)-1])
	forms := []string{secret, js, strings.ReplaceAll(js, "/", `\/`), url.QueryEscape(secret), url.PathEscape(secret)}
	r.mu.Lock()
	defer r.mu.Unlock()
	for i, f := range forms {
		if !slices.Contains(forms[:i], f) {
			r.secrets = append(r.secrets, []byte(f))
		}
	}
}

// longest is the length of the longest secret (0 for none).
func (r *redactor) longest() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, s := range r.secrets {
		n = max(n, len(s))
	}
	return n
}

func (r *redactor) scrub(p []byte) []byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range r.secrets {
		if bytes.Contains(p, s) {
			p = bytes.ReplaceAll(p, s, []byte(redacted))
		}
	}
	return p
}

func (r *redactor) wrap(w io.Writer) io.Writer { return &redactingWriter{w: w, r: r} }

// redactingWriter scrubs each write. The probe's own writes are whole
// lines, so a secret is never split between two of them; a body it copies
// goes through ReadFrom, which scrubs it a line at a time.
type redactingWriter struct {
	w io.Writer
	r *redactor
}

func (w *redactingWriter) Write(p []byte) (int, error) {
	if _, err := w.w.Write(w.r.scrub(p)); err != nil {
		return 0, err
	}
	return len(p), nil
}

// ReadFrom copies src (io.Copy calls it) a line at a time, so that a secret
// split between two of src's reads is whole when it is scrubbed. A line
// longer than the buffer goes in pieces, each holding back as many bytes
// as the longest secret but one: a secret that begins in them is whole
// with the next piece.
func (w *redactingWriter) ReadFrom(src io.Reader) (int64, error) {
	br := bufio.NewReaderSize(src, 64<<10)
	var n int64
	var carry []byte
	for {
		line, err := br.ReadSlice('\n')
		n += int64(len(line))
		out := w.r.scrub(append(carry, line...))
		carry = nil
		if err == bufio.ErrBufferFull {
			keep := max(0, min(len(out), w.r.longest()-1)) // no secret: none
			carry = append([]byte(nil), out[len(out)-keep:]...)
			out = out[:len(out)-keep]
		}
		if _, werr := w.w.Write(out); werr != nil {
			return n, werr
		}
		switch {
		case err == io.EOF:
			return n, nil
		case err != nil && err != bufio.ErrBufferFull:
			return n, err
		}
	}
}

// redactAll hides a header's value in a usage message.
func redactAll(h string) string {
	if name, _, ok := strings.Cut(h, ":"); ok {
		return name + ": " + redacted
	}
	return redacted
}
