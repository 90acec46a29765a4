package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/streamguard/streamguard"
	"github.com/streamguard/streamguard/internal/redact"
	"github.com/streamguard/streamguard/middleware"
	"github.com/streamguard/streamguard/retry"
	"github.com/streamguard/streamguard/sse"
	"github.com/streamguard/streamguard/tracing"
	gosse "github.com/tmaxmax/go-sse"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// APIKeyEnv names the environment variable the probe takes an API key from
// when no Authorization header is given; it is sent as "Authorization:
// Api-Key <key>".
const APIKeyEnv = "STREAMGUARD_API_KEY"

const probeUsage = `usage: streamguard probe [flags] URL

Calls URL through the streamguard client stack (budget, retry, tracing, stream
guard) and reports how the call ended: the status, the source and reason of a
failure, the request ID and where to look next. Retries are printed as they
happen, to stderr. On a terminal, control characters the server sent (ESC,
CR, ...) are shown escaped (\u001b); piped, the body is written as it came.

Flags:
`

// headerFlags collects repeated -H 'Name: value' flags.
type headerFlags []string

func (h *headerFlags) String() string     { return strings.Join(*h, ", ") }
func (h *headerFlags) Set(v string) error { *h = append(*h, v); return nil }

type probeOptions struct {
	method   string
	headers  headerFlags
	data     string
	stream   bool
	budget   time.Duration
	attempts int
	idle     time.Duration
	json     bool
	trace    bool
}

func probe(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	o, target, code := parseProbe(args, stdout, stderr)
	if code >= 0 {
		return code
	}
	// What the server sent is shown escaped on a terminal, and every secret
	// the probe knows of is cut from all it prints (before the escaping, so
	// that an escape cannot hide a secret from the cut).
	var esc *escapeWriter
	if terminal(stdout) {
		esc = &escapeWriter{w: stdout}
		stdout = esc
	}
	red := &redactor{}
	stdout, stderr = red.wrap(stdout), red.wrap(stderr)
	req, err := o.request(ctx, target, red, getenv)
	if err != nil {
		fmt.Fprintf(stderr, "streamguard probe: %v\n", err)
		return 2
	}
	out := &printer{w: stdout, errw: stderr, json: o.json, red: red}
	var attempts atomic.Int64
	attempts.Store(1)
	cfg := middleware.Config{
		Budget: o.budget,
		Retry: retry.Policy{MaxAttempts: o.attempts, OnRetry: func(a retry.Attempt) {
			attempts.Store(int64(a.N + 1))
			out.retry(a)
		}},
		Stream: sse.Config{IdleTimeout: o.idle},
	}
	var tp *sdktrace.TracerProvider
	if o.trace {
		exp, err := stdouttrace.New(stdouttrace.WithWriter(stderr), stdouttrace.WithPrettyPrint())
		if err != nil {
			fmt.Fprintf(stderr, "streamguard probe: %v\n", err)
			return 2
		}
		tp = sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
		cfg.Tracing = tracing.Config{TracerProvider: tp}
		defer tp.Shutdown(context.Background())
	}
	client := middleware.NewClient(cfg)
	defer client.CloseIdleConnections()

	res := o.call(client, req, out)
	if esc != nil {
		esc.Flush()
	}
	res.attempts = attempts.Load()
	out.result(res)
	if tp != nil {
		tp.ForceFlush(context.Background())
	}
	if res.err != nil {
		return 1
	}
	return 0
}

// parseProbe reads the probe's flags and its URL. code is -1 when the
// probe should go on, and its exit code otherwise (0 for -h, 2 for a usage
// error, which it has printed).
func parseProbe(args []string, stdout, stderr io.Writer) (o probeOptions, target *url.URL, code int) {
	fs := flag.NewFlagSet("probe", flag.ContinueOnError)
	fs.StringVar(&o.method, "X", "", "request method (default GET, or POST with -d)")
	fs.Var(&o.headers, "H", "request header 'Name: value' (repeatable)")
	fs.StringVar(&o.data, "d", "", "request body: a string, or @file to read it from a file")
	fs.BoolVar(&o.stream, "stream", false, "print SSE events as they arrive")
	fs.DurationVar(&o.budget, "budget", 0, "request budget (default the platform's 1200s plus 10s grace)")
	fs.IntVar(&o.attempts, "attempts", 0, "attempts in all, the first included (default 5)")
	fs.DurationVar(&o.idle, "idle", 0, "end a stream as stalled after this long without bytes, once its first byte came (before it: 10m0s, or longer if this is; 0: the library's default, 2m0s; negative: off)")
	fs.BoolVar(&o.json, "json", false, "print one JSON object per line, for scripts")
	fs.BoolVar(&o.trace, "trace", false, "print the finished spans and their attributes to stderr")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), probeUsage)
		fs.PrintDefaults()
	}
	if code := parseFlags(fs, args, stdout, stderr); code >= 0 {
		return o, nil, code
	}
	if fs.NArg() != 1 {
		msg := "want exactly one URL"
		if fs.NArg() > 1 && strings.HasPrefix(fs.Arg(1), "-") {
			msg = "flags go before the URL"
		}
		fmt.Fprintln(stderr, "streamguard probe: "+msg)
		fs.Usage()
		return o, nil, 2
	}
	if o.budget < 0 || o.attempts < 0 {
		// The stack would take a value of 0 or less for its default.
		fmt.Fprintln(stderr, "streamguard probe: --budget and --attempts must not be negative (0: the default)")
		return o, nil, 2
	}
	target, err := url.Parse(fs.Arg(0))
	if err != nil || (target.Scheme != "http" && target.Scheme != "https") || target.Host == "" {
		fmt.Fprintln(stderr, "streamguard probe: the URL must be http:// or https://")
		return o, nil, 2
	}
	return o, target, -1
}

// request builds the probe's request from its options, and gives red every
// secret in it: the values of credential headers, the API key from the
// environment, and the request's secrets as the library finds them.
func (o *probeOptions) request(ctx context.Context, target *url.URL, red *redactor, getenv func(string) string) (*http.Request, error) {
	header := make(http.Header)
	for _, h := range o.headers {
		name, value, ok := strings.Cut(h, ":")
		if !ok || strings.TrimSpace(name) == "" {
			return nil, fmt.Errorf("bad header %q: want 'Name: value'", redactAll(h))
		}
		name, value = strings.TrimSpace(name), strings.TrimSpace(value)
		if !validHeader(name, value) {
			return nil, fmt.Errorf("bad header %q: a name or value HTTP does not allow", redactAll(h))
		}
		header.Add(name, value)
		if sensitive(name) {
			red.add(value)
		}
	}
	if key := getenv(APIKeyEnv); key != "" {
		red.add(key)
		if header.Get("Authorization") == "" {
			header.Set("Authorization", "Api-Key "+key)
		}
	}
	if u := target.User; u != nil {
		// Go sends the userinfo as Basic auth: a server may echo it so.
		pw, _ := u.Password()
		red.add(base64.StdEncoding.EncodeToString([]byte(u.Username() + ":" + pw)))
	}
	var body io.Reader
	if o.data != "" {
		data := []byte(o.data)
		if strings.HasPrefix(o.data, "@") {
			var err error
			if data, err = os.ReadFile(o.data[1:]); err != nil {
				return nil, err
			}
		}
		body = bytes.NewReader(data)
	}
	method := o.method
	if method == "" {
		method = http.MethodGet
		if body != nil {
			method = http.MethodPost
		}
	}
	req, err := http.NewRequestWithContext(ctx, method, target.String(), body)
	if err != nil {
		return nil, err
	}
	req.Header = header
	if body != nil && req.Header.Get("Content-Type") == "" {
		req.Header.Set("Content-Type", "application/json")
	}
	// And what the library takes for the request's secrets: a Basic
	// credential decoded, the userinfo, the values of credential query
	// parameters and long opaque ones (not ?stream=true: every value would
	// mangle the output), and each cookie's value of 16 bytes or more (not
	// consent=true; the whole header is cut above).
	bare := req.Clone(ctx)
	bare.Header.Del("Cookie")
	for _, s := range redact.Secrets(bare) {
		red.add(s)
	}
	cookies := &http.Request{URL: &url.URL{}, Header: http.Header{"Cookie": req.Header.Values("Cookie")}}
	for _, s := range redact.Secrets(cookies) { // split as the library does: any name, any value
		if len(s) >= 16 {
			red.add(s)
		}
	}
	return req, nil
}

// call sends req and reads its answer: the events of a stream with
// --stream, the body to stdout otherwise.
func (o *probeOptions) call(client *http.Client, req *http.Request, out *printer) result {
	start := time.Now()
	var res result
	resp, err := client.Do(req)
	if err == nil {
		res.status = resp.StatusCode
		res.requestID = streamguard.RequestID(resp.Header)
		if err = streamguard.Check(resp); err == nil {
			if o.stream {
				res.events, res.bytes, err = out.stream(resp.Body, start)
			} else {
				res.bytes, err = out.body(resp.Body)
			}
		}
		resp.Body.Close()
	}
	res.elapsed = time.Since(start)
	res.err = err
	return res
}

// sensitive reports whether a header carries a credential.
func sensitive(name string) bool {
	n := strings.ToLower(name)
	for _, s := range []string{"auth", "key", "token", "secret", "cookie", "signature", "password"} {
		if strings.Contains(n, s) {
			return true
		}
	}
	return false
}

// result is how a probe ended.
type result struct {
	status    int
	requestID string
	attempts  int64
	events    int64
	bytes     int64
	elapsed   time.Duration
	err       error
}

func (p *printer) retry(a retry.Attempt) {
	var se *streamguard.Error
	errors.As(a.Err, &se)
	if p.json {
		v := map[string]any{"type": "retry", "attempt": a.N, "status": a.StatusCode, "wait_ms": a.Delay.Milliseconds()}
		if se != nil {
			v["source"], v["reason"] = se.Source, se.Reason
		}
		p.line(p.w, v)
		return
	}
	what := "no response"
	if a.StatusCode > 0 {
		what = fmt.Sprint(a.StatusCode)
	}
	if se != nil {
		what += " " + string(se.Source) + " " + string(se.Reason)
	}
	fmt.Fprintf(p.errw, "retry: attempt %d got %s; waiting %s\n", a.N, what, a.Delay.Round(time.Millisecond))
}

// stream prints the events of an SSE body as they arrive and keeps a live
// line on stderr.
func (p *printer) stream(body io.Reader, start time.Time) (events, bytes int64, err error) {
	cr := &countReader{r: body}
	var last time.Time
	for ev, rerr := range gosse.Read(cr, &gosse.ReadConfig{MaxEventSize: sse.DefaultMaxEventBytes}) {
		if rerr != nil {
			err = rerr
			break
		}
		events++
		if p.json {
			v := map[string]any{"type": "event", "data": ev.Data}
			if ev.Type != "" {
				v["event"] = ev.Type
			}
			if ev.LastEventID != "" {
				v["id"] = ev.LastEventID
			}
			p.line(p.w, v)
			continue
		}
		if ev.Type != "" {
			fmt.Fprintf(p.w, "event: %s\n", ev.Type)
		}
		fmt.Fprintf(p.w, "data: %s\n\n", ev.Data)
		if now := time.Now(); isTerminal(p.errw) && now.Sub(last) > 250*time.Millisecond {
			last = now
			p.live = true
			fmt.Fprintf(p.errw, "\r%d events, %d bytes, %.1fs ", events, cr.n, now.Sub(start).Seconds())
		}
	}
	if p.live {
		fmt.Fprint(p.errw, "\r\033[K")
	}
	return events, cr.n, err
}

func (p *printer) result(r result) {
	var se *streamguard.Error
	if r.err != nil && !errors.As(r.err, &se) {
		se = streamguard.FromError(r.err)
	}
	if se != nil && se.RequestID != "" {
		r.requestID = se.RequestID
	}
	if se != nil && se.StatusCode > 0 {
		r.status = se.StatusCode
	}
	if se != nil && se.Events > r.events {
		r.events = se.Events
	}
	if p.json {
		v := map[string]any{"type": "result", "ok": se == nil, "status": r.status, "attempts": r.attempts,
			"events": r.events, "bytes": r.bytes, "elapsed_ms": r.elapsed.Milliseconds()}
		if r.requestID != "" {
			v["request_id"] = r.requestID
		}
		if se != nil {
			v["source"], v["reason"], v["message"], v["hint"], v["retryable"] = se.Source, se.Reason, se.Message, se.Hint(), se.Retryable
			if se.Code != "" {
				v["code"] = se.Code
			}
		}
		p.line(p.w, v)
		return
	}
	rid := ""
	if r.requestID != "" {
		rid = ", request ID " + r.requestID
	}
	if se == nil {
		fmt.Fprintf(p.errw, "\nok: %d complete: %d events, %d bytes in %.2fs, %d attempt(s)%s\n",
			r.status, r.events, r.bytes, r.elapsed.Seconds(), r.attempts, rid)
		return
	}
	// The hint gets a line of its own, so the error's line goes without it.
	msg := strings.TrimSuffix(se.Error(), " ("+se.Hint()+")")
	fmt.Fprintf(p.errw, "\nfailed: %s\n  source %s, reason %s, %d attempt(s), %d events, %d bytes in %.2fs%s\n  hint: %s\n",
		msg, se.Source, se.Reason, r.attempts, r.events, r.bytes, r.elapsed.Seconds(), rid, se.Hint())
}

type countReader struct {
	r io.Reader
	n int64
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}
