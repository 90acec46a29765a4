package sse

import (
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

// TestDropBOM: a continuation's byte-order mark is dropped whether it
// comes whole or a byte at a time; bytes that only began like one, or a
// body that ends within one, go on as they were.
func TestDropBOM(t *testing.T) {
	for in, want := range map[string]string{
		bom + "data: b\n\n": "data: b\n\n",
		"data: b\n\n":       "data: b\n\n",
		"\xef\xbbX\n\n":     "\xef\xbbX\n\n",
		"\xef\xbb":          "\xef\xbb",
		bom:                 "",
		"":                  "",
	} {
		for name, r := range map[string]func(io.Reader) io.Reader{"whole": func(r io.Reader) io.Reader { return r }, "bytes": iotest.OneByteReader} {
			got, err := io.ReadAll(&dropBOM{ReadCloser: io.NopCloser(r(strings.NewReader(in)))})
			if err != nil || string(got) != want {
				t.Errorf("%s %q: %q, %v; want %q", name, in, got, err, want)
			}
		}
	}
}
