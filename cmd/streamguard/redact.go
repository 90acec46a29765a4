package main

import (
	"bytes"
	"io"
	"strings"
	"sync"

	"github.com/streamguard/streamguard/internal/redact"
)

// redactor cuts the secrets it was given (API keys, credential headers,
// query values) from everything the probe prints, whole and in the forms a
// header carries them ("Bearer <key>", "Api-Key <key>").
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
		if rest, ok := strings.CutPrefix(secret, scheme); ok && len(rest) >= 4 {
			r.add(rest)
		}
	}
	if len(secret) < 4 {
		return // too short to cut without mangling the output; not a real key
	}
	r.mu.Lock()
	r.secrets = append(r.secrets, []byte(secret))
	r.mu.Unlock()
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

// redactingWriter scrubs each write. The probe writes whole lines, so a
// secret is never split between two writes.
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

// redactAll hides a header's value in a usage message.
func redactAll(h string) string {
	if name, _, ok := strings.Cut(h, ":"); ok {
		return name + ": " + redacted
	}
	return redacted
}
