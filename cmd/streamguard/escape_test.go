package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestEscapeWriter: what a terminal would act on is shown escaped, the rest
// passes as it came, and the output is the same however the writes split it.
func TestEscapeWriter(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"plain text\twith tab\n", "plain text\twith tab\n"},
		{"\x1b]0;owned\x07title", `\u001b]0;owned\u0007title`},
		{"\x1b[2J\x1b[H", `\u001b[2J\u001b[H`},
		{"ok\rFAKE", `ok\u000dFAKE`},
		{"del\x7f", `del\u007f`},
		{"c1 \xc2\x9b31m", `c1 \u009b31m`},
		{"bidi \u202eevil", `bidi \u202eevil`},
		{"sep\u2028x", `sep\u2028x`},
		{"héllo 世界 🎉", "héllo 世界 🎉"},
		{"bad \xff\xfe utf8 \xe4\xb8", `bad \xff\xfe utf8 \xe4\xb8`},
		{"\x9b raw C1 byte", `\x9b raw C1 byte`},
	} {
		for split := 0; split <= len(tc.in); split++ {
			var out bytes.Buffer
			e := &escapeWriter{w: &out}
			for _, part := range []string{tc.in[:split], tc.in[split:]} {
				if n, err := e.Write([]byte(part)); n != len(part) || err != nil {
					t.Fatalf("%q: Write = %d, %v", tc.in, n, err)
				}
			}
			if err := e.Flush(); err != nil {
				t.Fatal(err)
			}
			if out.String() != tc.want {
				t.Errorf("%q split at %d: got %q, want %q", tc.in, split, out.String(), tc.want)
			}
		}
	}
}

// TestProbeEscapesOnTerminal: on a terminal, escape sequences a server sends
// in an event or a body reach the screen escaped, secrets are still cut, and
// --json lines stay valid JSON; piped, the body is written as it came.
func TestProbeEscapesOnTerminal(t *testing.T) {
	const hostile = "\x1b]0;pwned\x07\x1b[2J\rok \xc2\x85"
	const inEvent = "\x1b]0;pwned\x07\x1b[2J ok \xc2\x85" // a CR would end the line
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/stream" {
			w.Header().Set("Content-Type", "text/event-stream")
			w.Write([]byte("event: x\x1b[31m\ndata: " + inEvent + "\n\ndata: [DONE]\n\n"))
			return
		}
		w.Write([]byte("body " + hostile + " key " + r.Header.Get("Authorization") + "\n"))
	}))
	defer srv.Close()
	key := []string{"-H", "Authorization: " + secret, "--attempts", "1", "--budget", "5s"}

	terminal = func(io.Writer) bool { return true }
	defer func() { terminal = isTerminal }()
	for _, args := range [][]string{{srv.URL + "/body"}, {"--stream", srv.URL + "/stream"}, {"--json", "--stream", srv.URL + "/stream"}} {
		code, stdout, _ := probeRun(t, nil, append(key, args...)...)
		if code != 0 || strings.ContainsAny(stdout, "\x1b\x07\r\u0085") || strings.Contains(stdout, secret) || !strings.Contains(stdout, `\u001b]0;pwned\u0007`) {
			t.Errorf("%q: exit %d, stdout %q", args, code, stdout)
		}
		if args[0] == "--json" {
			for line := range strings.Lines(stdout) {
				var v map[string]any
				if err := json.Unmarshal([]byte(line), &v); err != nil {
					t.Errorf("not JSON: %q: %v", line, err)
				} else if v["type"] == "event" && v["data"] != inEvent && v["data"] != "[DONE]" {
					t.Errorf("the event's data decoded to %q", v["data"])
				}
			}
		}
	}

	terminal = func(io.Writer) bool { return false }
	if code, stdout, _ := probeRun(t, nil, append(key, srv.URL+"/body")...); code != 0 || !strings.Contains(stdout, hostile) {
		t.Errorf("piped: exit %d, stdout %q", code, stdout)
	}
}
