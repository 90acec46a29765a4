package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/streamguard/streamguard/gatewaytest"
	"go.uber.org/goleak"
)

// TestMain runs the tests, or, with STREAMGUARD_TEST_MAIN=1 in its
// environment, the command itself on the arguments after "--": the tests
// start relays as processes of their own that way (startRelayProcess).
func TestMain(m *testing.M) {
	if os.Getenv("STREAMGUARD_TEST_MAIN") == "1" {
		for i, a := range os.Args {
			if a == "--" {
				os.Args = append([]string{"streamguard"}, os.Args[i+1:]...)
				main()
			}
		}
		os.Exit(2)
	}
	goleak.VerifyTestMain(m)
}

func TestDemoClassifiesEveryScenario(t *testing.T) {
	var out bytes.Buffer
	start := time.Now()
	if !runDemo(context.Background(), &out) {
		t.Fatalf("demo reported a misclassification:\n%s", out.String())
	}
	if d := time.Since(start); d > 15*time.Second {
		t.Errorf("demo took %v, over its 15 s", d)
	}
	text := out.String()
	for _, sc := range scenarios() {
		if !strings.Contains(text, sc.name) {
			t.Errorf("no row for %q", sc.name)
		}
	}
	if strings.Contains(text, "UNEXPECTED") || !strings.Contains(text, fmt.Sprintf("%d/%d scenarios classified as expected", len(scenarios()), len(scenarios()))) {
		t.Errorf("summary:\n%s", text)
	}
}

// TestDemoInterrupted: a demo interrupted (Ctrl-C) stops, says so and exits
// 130, without blaming the classification of the scenarios it cut short.
func TestDemoInterrupted(t *testing.T) {
	var out, errb bytes.Buffer
	ctx, cancel := context.WithCancel(context.Background()) // as a signal's: no deadline, which the retries would heed
	defer cancel()
	time.AfterFunc(300*time.Millisecond, cancel)
	code := run1(ctx, nil, &out, &errb, noenv)
	text := out.String()
	var ran, of, passed, ran2 int
	_, err := fmt.Sscanf(text[strings.LastIndex(text, "\ninterrupted")+1:], "interrupted after %d of %d scenarios: %d/%d", &ran, &of, &passed, &ran2)
	if code != 130 || err != nil || of != len(scenarios()) || ran >= of || passed != ran || ran2 != ran || strings.Contains(text, "UNEXPECTED") {
		t.Errorf("exit %d, %v:\n%s", code, err, text)
	}
}

func TestDemoExitCode(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run1(context.Background(), []string{"demo", "extra"}, &out, &errb, noenv); code != 2 {
		t.Errorf("demo with an argument: exit %d", code)
	}
	if code := run1(context.Background(), []string{"nonsense"}, &out, &errb, noenv); code != 2 || !strings.Contains(errb.String(), "usage") {
		t.Errorf("unknown command: exit %d, %q", code, errb.String())
	}
	// Help is asked for the same way of the command and of its demo, and
	// printed to stdout with exit 0, as the probe's and the relay's is.
	for _, args := range [][]string{{"-h"}, {"--help"}, {"help"}, {"demo", "-h"}, {"demo", "--help"}} {
		out.Reset()
		if code := run1(context.Background(), args, &out, &errb, noenv); code != 0 || !strings.Contains(out.String(), "usage") {
			t.Errorf("%q: exit %d, stdout %q", args, code, out.String())
		}
	}
}

func noenv(string) string { return "" }

const secret = "sk-live-1234567890abcdef"

// probeRun runs the probe and checks that the secret never reaches output.
func probeRun(t *testing.T, env map[string]string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run1(context.Background(), append([]string{"probe"}, args...), &out, &errb, func(k string) string { return env[k] })
	stdout, stderr = out.String(), errb.String()
	if strings.Contains(stdout+stderr, secret) || strings.Contains(stdout+stderr, "1234567890abcdef") {
		t.Errorf("the API key reached the output:\nstdout: %s\nstderr: %s", stdout, stderr)
	}
	return code, stdout, stderr
}

func TestProbe(t *testing.T) {
	gw := gatewaytest.NewServer(gatewaytest.ChatStream(5))
	defer gw.Close()
	url := gw.URL + "/v1/chat/completions"

	t.Run("success", func(t *testing.T) {
		code, stdout, stderr := probeRun(t, nil, "-H", "Authorization: Bearer "+secret, "-d", `{"stream":true}`, "--stream", url)
		if code != 0 || strings.Count(stdout, "data: ") != 6 || !strings.Contains(stderr, "ok: 200 complete: 6 events") {
			t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
		}
		rec := gw.Records()[len(gw.Records())-1]
		if rec.Method != "POST" || rec.Header.Get("Authorization") != "Bearer "+secret || string(rec.Body) != `{"stream":true}` {
			t.Errorf("the gateway saw %s %q %q", rec.Method, rec.Header.Get("Authorization"), rec.Body)
		}
	})
	t.Run("retried 503", func(t *testing.T) {
		gw.Script(gatewaytest.Draining(20*time.Millisecond), gatewaytest.Pass())
		code, stdout, stderr := probeRun(t, map[string]string{APIKeyEnv: secret}, "--json", "--stream", url)
		if code != 0 {
			t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
		}
		lines := strings.Split(strings.TrimSpace(stdout), "\n")
		var first, last map[string]any
		json.Unmarshal([]byte(lines[0]), &first)
		json.Unmarshal([]byte(lines[len(lines)-1]), &last)
		if first["type"] != "retry" || first["status"] != 503.0 || first["reason"] != "unavailable" {
			t.Errorf("first line %v", first)
		}
		if last["type"] != "result" || last["ok"] != true || last["attempts"] != 2.0 || last["events"] != 6.0 {
			t.Errorf("last line %v", last)
		}
		if rec := gw.Records()[len(gw.Records())-1]; rec.Header.Get("Authorization") != "Api-Key "+secret {
			t.Errorf("the key from %s was not sent: %q", APIKeyEnv, rec.Header.Get("Authorization"))
		}
	})
	t.Run("truncated stream", func(t *testing.T) {
		gw.Script(gatewaytest.Cut(2))
		code, stdout, stderr := probeRun(t, nil, "-H", "X-Api-Key: "+secret, "--stream", url+"?api_key="+secret)
		if code != 1 || !strings.Contains(stderr, "source network, reason truncated") || !strings.Contains(stderr, "request ID gw-") ||
			!strings.Contains(stderr, "hint: ") || strings.Count(stdout, "data: ") != 2 {
			t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
		}
	})
	t.Run("error status", func(t *testing.T) {
		gw.Script(gatewaytest.Status(401, `{"error":"Invalid API key `+secret+`"}`))
		code, _, stderr := probeRun(t, map[string]string{APIKeyEnv: secret}, "--attempts", "1", url)
		if code != 1 || !strings.Contains(stderr, "source request, reason unauthorized") || !strings.Contains(stderr, redacted) {
			t.Fatalf("exit %d\n%s", code, stderr)
		}
		// The hint is printed once, on its own line.
		if hint := "check the API key in the Authorization header"; strings.Count(stderr, hint) != 1 || !strings.Contains(stderr, "  hint: "+hint) {
			t.Errorf("the hint is not printed once:\n%s", stderr)
		}
	})
	t.Run("trace", func(t *testing.T) {
		code, _, stderr := probeRun(t, map[string]string{APIKeyEnv: secret}, "--trace", url)
		if code != 0 || !strings.Contains(stderr, `"http.response.status_code"`) || !strings.Contains(stderr, `"SpanKind": 3`) {
			t.Fatalf("exit %d\n%s", code, stderr)
		}
	})
	t.Run("body from a file", func(t *testing.T) {
		f := filepath.Join(t.TempDir(), "body.json")
		os.WriteFile(f, []byte(`{"from":"file"}`), 0o600)
		if code, _, stderr := probeRun(t, nil, "-X", "PUT", "-d", "@"+f, url); code != 0 {
			t.Fatalf("exit %d\n%s", code, stderr)
		}
		if rec := gw.Records()[len(gw.Records())-1]; rec.Method != "PUT" || string(rec.Body) != `{"from":"file"}` {
			t.Errorf("the gateway saw %s %q", rec.Method, rec.Body)
		}
	})
	t.Run("usage errors", func(t *testing.T) {
		for _, args := range [][]string{
			{},
			{"ftp://example"},
			{url, url},
			{"--no-such-flag", url},
			{"-H", "no colon " + secret, url},
			{"-d", "@/no/such/file", url},
		} {
			if code, _, stderr := probeRun(t, nil, args...); code != 2 || stderr == "" {
				t.Errorf("%q: exit %d, stderr %q", args, code, stderr)
			}
		}
	})
}

// TestProbeEchoes: a key the server echoes back never reaches the probe's
// output, split between two of the body's reads, or given as the URL's
// userinfo (which Go sends as Basic auth).
func TestProbeEchoes(t *testing.T) {
	split := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		k := strings.TrimPrefix(r.Header.Get("Authorization"), "Api-Key ")
		w.Write([]byte("you sent " + k[:10]))
		w.(http.Flusher).Flush()
		time.Sleep(50 * time.Millisecond)
		w.Write([]byte(k[10:] + "\n"))
	}))
	defer split.Close()
	if code, stdout, _ := probeRun(t, map[string]string{APIKeyEnv: secret}, "--attempts", "1", "--budget", "5s", split.URL); code != 0 || !strings.Contains(stdout, "you sent REDACTED") {
		t.Errorf("exit %d, stdout %q", code, stdout)
	}
	basic := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, pw, _ := r.BasicAuth()
		w.Write([]byte("password " + pw + ", header " + r.Header.Get("Authorization") + "\n"))
	}))
	defer basic.Close()
	u := strings.Replace(basic.URL, "http://", "http://user:"+secret+"@", 1)
	if code, stdout, _ := probeRun(t, nil, "--attempts", "1", "--budget", "5s", u); code != 0 || strings.Contains(stdout, "Basic dXNlcj") {
		t.Errorf("exit %d, stdout %q", code, stdout)
	}
}

// TestProbeNegativeFlags: a negative --budget or --attempts is a usage
// error, not the default in disguise.
func TestProbeNegativeFlags(t *testing.T) {
	for _, args := range [][]string{{"--attempts", "-3", "http://127.0.0.1:1/"}, {"--budget", "-1s", "http://127.0.0.1:1/"}} {
		if code, _, stderr := probeRun(t, nil, args...); code != 2 {
			t.Errorf("%q: exit %d, want 2; stderr %q", args, code, stderr)
		}
	}
}

// TestRedactingCopyLongLine: a body copied through the probe's output is
// scrubbed whole, even where a secret straddles the end of its buffer in a
// line longer than the buffer, and nothing else is lost or added.
func TestRedactingCopyLongLine(t *testing.T) {
	red := &redactor{}
	red.add(secret)
	for _, at := range []int{64<<10 - 5, 64<<10 - len(secret), 64 << 10, 3 * 64 << 10} {
		body := strings.Repeat("x", at) + secret + strings.Repeat("y", 100<<10) + "\nend " + secret
		var out bytes.Buffer
		if _, err := io.Copy(red.wrap(&out), iotest.HalfReader(strings.NewReader(body))); err != nil {
			t.Fatal(err)
		}
		if want := strings.ReplaceAll(body, secret, redacted); out.String() != want {
			t.Errorf("secret at %d: got %d bytes (the key in them: %v), want %d", at, out.Len(), strings.Contains(out.String(), secret), len(want))
		}
	}
}

// TestRedactingCopyNoSecret: a line longer than the buffer, with no
// secret to cut, goes through whole (it panicked: the bytes held back
// were -1).
func TestRedactingCopyNoSecret(t *testing.T) {
	body := strings.Repeat("x", 100<<10) + "\nend"
	var out bytes.Buffer
	if _, err := io.Copy((&redactor{}).wrap(&out), iotest.HalfReader(strings.NewReader(body))); err != nil || out.String() != body {
		t.Fatalf("copied %d bytes, %v; want %d", out.Len(), err, len(body))
	}
}
