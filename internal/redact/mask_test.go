package redact

import (
	"strings"
	"testing"
)

// TestMask: secrets of 16 bytes or more and key shapes are masked in
// place, the length kept; shorter secrets are left (they could be the
// bytes' syntax: "true", "data"); a text with nothing to mask is left as it
// is.
func TestMask(t *testing.T) {
	secrets := []string{"Zq8x7Lm2Np4Rt6Vw", "abcd", "data", "true"}
	cases := []struct{ in, want string }{
		{`{"error":"key Zq8x7Lm2Np4Rt6Vw is bad"}`, `{"error":"key REDACTED******** is bad"}`},
		{`pin abcd, Bearer tok_0123456789 and sk-proj-Ab12Cd34Ef56`, `pin abcd, Bearer REDACTED****** and REDACTED************`},
		{"event: error\ndata: {\"retryable\":true}", "event: error\ndata: {\"retryable\":true}"},
		{`BEARER tok_0123456789`, `BEARER REDACTED******`},
		{`a Bearer token, the task-free sk-`, `a Bearer token, the task-free sk-`},
	}
	for _, c := range cases {
		b := []byte(c.in)
		changed := Mask(b, secrets)
		if string(b) != c.want || changed != (c.in != c.want) {
			t.Errorf("Mask(%q) = %q, %v; want %q", c.in, b, changed, c.want)
		}
		if len(b) != len(c.in) || strings.Contains(string(b), "Zq8x") {
			t.Errorf("Mask(%q): %q", c.in, b)
		}
	}
}
