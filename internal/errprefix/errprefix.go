// Package errprefix is the one reading of an error response's body: its
// first Max bytes, read once and kept in front of the rest, so that every
// layer that classifies the response (the tracing span, the retry layer, the
// client's final-error layer and the caller's streamguard.Check) reads the
// same bytes, and only the first of them reads the network.
package errprefix

import (
	"bytes"
	"io"
	"net/http"
)

// Max is how much of an error body is read to classify it:
// streamguard.MaxErrorBody.
const Max = 64 << 10

// Body is an error response's body with its first bytes read: Read gives
// them back, then the rest of the original; Close closes the original.
type Body struct {
	prefix   []byte // at most Max bytes: what classification sees
	complete bool   // the body has no bytes after prefix
	r        io.Reader
	c        io.Closer
	touched  bool // a Read happened: the prefix is no longer the body's start
}

func (b *Body) Read(p []byte) (int, error) {
	b.touched = true
	return b.r.Read(p)
}

func (b *Body) Close() error {
	if b.c == nil {
		return nil
	}
	return b.c.Close()
}

// Unwrapper is a response body that reads from another: the layers that
// wrap a body after Keep (the tracing span, the budget's timer) implement
// it, so that Keep finds the prefix already read beneath them.
type Unwrapper interface{ UnwrapBody() io.ReadCloser }

// Keep returns the first Max bytes of resp's body and whether they are all
// of it. The first call reads them and replaces resp.Body with a *Body that
// gives them back; later calls, by any layer, find that *Body (through
// bodies that implement Unwrapper) and read nothing, as long as nobody has
// read from it since. A read error is kept, and returned after the prefix.
func Keep(resp *http.Response) (prefix []byte, complete bool) {
	if resp.Body == nil || resp.Body == http.NoBody {
		return nil, true
	}
	rc := io.ReadCloser(resp.Body)
	for range 8 {
		if b, ok := rc.(*Body); ok {
			if !b.touched {
				return b.prefix, b.complete
			}
			break
		}
		u, ok := rc.(Unwrapper)
		if !ok {
			break
		}
		rc = u.UnwrapBody()
	}
	// One byte more than Max tells a body of exactly Max bytes from a longer
	// one.
	buf := make([]byte, Max+1)
	n, err := io.ReadFull(resp.Body, buf)
	data := buf[:n]
	var rest io.Reader = resp.Body
	switch err {
	case nil:
	case io.EOF, io.ErrUnexpectedEOF:
		rest = eofReader{}
	default:
		rest = errReader{err}
	}
	b := &Body{prefix: data[:min(n, Max)], complete: err == io.EOF || err == io.ErrUnexpectedEOF,
		r: io.MultiReader(bytes.NewReader(data), rest), c: resp.Body}
	resp.Body = b
	return b.prefix, b.complete
}

// Detached returns a Body of prefix alone, its original closed: after the
// prefix it returns io.EOF when complete, and rest otherwise.
func Detached(prefix []byte, complete bool, rest error) *Body {
	var r io.Reader = eofReader{}
	if !complete {
		r = errReader{rest}
	}
	return &Body{prefix: prefix, complete: complete, r: io.MultiReader(bytes.NewReader(prefix), r)}
}

type eofReader struct{}

func (eofReader) Read([]byte) (int, error) { return 0, io.EOF }

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }
