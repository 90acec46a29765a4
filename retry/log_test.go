package retry_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/streamguard/streamguard/gatewaytest"
	"github.com/streamguard/streamguard/retry"
)

// logBuffer is a slog text log in memory, safe for concurrent writes.
type logBuffer struct{ gatewaytest.SyncBuffer }

func (b *logBuffer) lines() []string {
	return strings.Split(strings.TrimSpace(b.String()), "\n")
}

func newLog() (*logBuffer, *slog.Logger) {
	b := &logBuffer{}
	return b, slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// The credentials of TestLoggerNeverLogsCredentials: in a header, in
// another header, in the query; the gateway echoes all of them.
const (
	headerKey = "hdr-secret-7f3a9c21e5"
	apiKey    = "xkey-secret-0b8d4e66aa"
	queryKey  = "qry-secret-5c1e2d9f04"
	echoed    = `{"error":"Incorrect API key provided: ` + headerKey + " " + apiKey + " " + queryKey + `"}`
)

// Issue bullet: a *slog.Logger logs each retry and each final failure, with
// the attempt, wait, status, reason, method and redacted URL, and never a
// credential: not from the headers, the query, or an error body that echoes
// them.
func TestLoggerNeverLogsCredentials(t *testing.T) {
	gw := gatewaytest.NewServer(gatewaytest.JSON(200, `{"ok":true}`))
	defer gw.Close()
	gw.Script(gatewaytest.Status(503, echoed), gatewaytest.Status(503, echoed), gatewaytest.Status(401, echoed))
	logs, logger := newLog()
	rt := retry.NewTransport(gw.Client().Transport, fast(retry.Policy{Logger: logger}))
	resp, err := do(t, rt, "POST", gw.URL+"/v1/chat/completions?api_key="+queryKey, strings.NewReader(`{}`),
		"Authorization", "Bearer "+headerKey, "X-Api-Key", apiKey)
	if err != nil {
		t.Fatal(err)
	}
	if b := readAll(t, resp); string(b) != echoed {
		t.Errorf("body %q: logging must leave it whole", b)
	}

	lines := logs.lines()
	if len(lines) != 3 {
		t.Fatalf("%d log lines, want 2 retries and 1 failure:\n%s", len(lines), strings.Join(lines, "\n"))
	}
	wants := [][]string{
		{"level=WARN", `msg="streamguard: retrying request"`, "attempt=1", "wait=1ms", "status=503", "reason=unavailable"},
		{"level=WARN", "attempt=2", "status=503"},
		{"level=ERROR", `msg="streamguard: request failed"`, "attempts=3", "status=401", "reason=unauthorized"},
	}
	for i, line := range lines {
		for _, w := range append(wants[i], "method=POST", `url="`+gw.URL+`/v1/chat/completions?api_key=REDACTED"`) {
			if !strings.Contains(line, w) {
				t.Errorf("line %d lacks %s:\n%s", i+1, w, line)
			}
		}
	}
	for _, key := range []string{headerKey, apiKey, queryKey} {
		if all := strings.Join(lines, "\n"); strings.Contains(all, key) {
			t.Errorf("the log holds %s:\n%s", key, all)
		}
	}
}

// A stream that fails after its 2xx is logged when its body fails, once; the
// caller's own cancellation is not logged at all.
func TestLoggerStreamFailure(t *testing.T) {
	gw := gatewaytest.NewServer(gatewaytest.ChatStream(5))
	defer gw.Close()
	gw.Script(gatewaytest.Cut(1))
	logs, logger := newLog()
	rt := retry.NewTransport(gw.Client().Transport, retry.Policy{Logger: logger})
	resp, err := do(t, rt, "GET", gw.URL+"/v1/chat/completions", nil)
	if err != nil {
		t.Fatal(err)
	}
	if l := logs.lines(); l[0] != "" {
		t.Errorf("logged before the body failed: %q", l)
	}
	if _, err := io.ReadAll(resp.Body); err == nil {
		t.Fatal("the cut stream read to its end")
	}
	resp.Body.Close()
	if l := logs.lines(); len(l) != 1 || !strings.Contains(l[0], "level=ERROR") || !strings.Contains(l[0], "method=GET") {
		t.Errorf("log %q, want one failure", l)
	}

	canceled, logger := newLog()
	ctx, cancel := context.WithCancel(context.Background())
	rt = retry.NewTransport(roundTripFunc(func(r *http.Request) (*http.Response, error) {
		cancel()
		return &http.Response{StatusCode: 200, Header: http.Header{}, Request: r,
			Body: io.NopCloser(errReader{ctx.Err()})}, nil
	}), retry.Policy{Logger: logger})
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://gateway.test/stream", nil)
	resp, err = rt.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	io.ReadAll(resp.Body)
	resp.Body.Close()
	if l := canceled.lines(); l[0] != "" {
		t.Errorf("the caller's cancellation was logged: %q", l)
	}
}

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }
