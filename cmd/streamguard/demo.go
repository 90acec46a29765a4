package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/streamguard/streamguard"
	"github.com/streamguard/streamguard/gatewaytest"
	"github.com/streamguard/streamguard/middleware"
	"github.com/streamguard/streamguard/retry"
	"github.com/streamguard/streamguard/sse"
)

// scenario is one fault the demo injects, and what the stack must make of
// it.
type scenario struct {
	name   string
	h2     bool         // on the HTTP/2 gateway
	model  http.Handler // nil: a 10-event OpenAI chat stream
	script []gatewaytest.Fault
	path   string // "" means /v1/chat/completions
	body   int    // request body bytes
	source streamguard.Source
	reason streamguard.Reason // "" means success
	resume int64              // how many resumes the stream needs
}

// outcome is what one scenario came to.
type outcome struct {
	status   int
	source   streamguard.Source
	reason   streamguard.Reason
	attempts int64 // requests the gateway saw
	resumes  int64 // of which resumes of the stream (with Last-Event-ID)
	events   int64
	hint     string
	err      error
}

func scenarios() []scenario {
	return []scenario{
		{name: "503 draining, then success", script: []gatewaytest.Fault{gatewaytest.Draining(200 * time.Millisecond), gatewaytest.Pass()}},
		{name: "502 model unreachable", script: []gatewaytest.Fault{gatewaytest.Unreachable(), gatewaytest.Unreachable(), gatewaytest.Unreachable()},
			source: streamguard.SourcePlatform, reason: streamguard.ReasonUnreachable},
		{name: "502 client closed connection", script: []gatewaytest.Fault{gatewaytest.ClientClosed()},
			source: streamguard.SourceClient, reason: streamguard.ReasonCanceled},
		{name: "504 gateway timeout", script: []gatewaytest.Fault{gatewaytest.GatewayTimeout(100 * time.Millisecond)},
			source: streamguard.SourcePlatform, reason: streamguard.ReasonTimeout},
		{name: "413 refused before upload", path: "/production/async_predict", body: 300_000,
			source: streamguard.SourceRequest, reason: streamguard.ReasonPayloadTooLarge},
		{name: "429 with Retry-After, then success", script: []gatewaytest.Fault{gatewaytest.RateLimited(300 * time.Millisecond), gatewaytest.Pass()}},
		{name: "OpenAI stream cut mid-event", script: []gatewaytest.Fault{gatewaytest.Cut(3)},
			source: streamguard.SourceNetwork, reason: streamguard.ReasonTruncated},
		{name: "stream cut, resumed, complete", model: gatewaytest.ResumableStream(10), script: []gatewaytest.Fault{gatewaytest.Cut(4), gatewaytest.Pass()}, resume: 1},
		{name: "Ollama stream cut mid-line", model: gatewaytest.OllamaStream(10), path: "/api/chat", script: []gatewaytest.Fault{gatewaytest.Cut(3)},
			source: streamguard.SourceNetwork, reason: streamguard.ReasonTruncated},
		{name: "Ollama stream ends before done", model: gatewaytest.OllamaStream(10), path: "/api/chat", script: []gatewaytest.Fault{gatewaytest.EndEarly(4)},
			source: streamguard.SourcePlatform, reason: streamguard.ReasonTruncated},
		{name: "stream ends without [DONE]", script: []gatewaytest.Fault{gatewaytest.EndEarly(6)},
			source: streamguard.SourcePlatform, reason: streamguard.ReasonTruncated},
		{name: "stalled stream", script: []gatewaytest.Fault{gatewaytest.Stall(2)},
			source: streamguard.SourcePlatform, reason: streamguard.ReasonStalled},
		{name: "in-band error event (vLLM)", model: gatewaytest.ErrorStream(4, "CUDA out of memory"),
			source: streamguard.SourceModel, reason: streamguard.ReasonModelError},
		{name: "HTTP/2 stream reset", h2: true, script: []gatewaytest.Fault{gatewaytest.Reset(5)},
			source: streamguard.SourceNetwork, reason: streamguard.ReasonTruncated},
		{name: "complete stream", h2: true},
	}
}

// demoConfig is the client stack the demo uses: the defaults (502, 503 and
// a 429 with Retry-After retried, under the client's retry budget), with
// fewer attempts, a backoff and an idle timeout short enough for a demo.
func demoConfig(base http.RoundTripper) middleware.Config {
	return middleware.Config{
		Base: base,
		Retry: retry.Policy{
			MaxAttempts: 3,
			Backoff: func() backoff.BackOff {
				return backoff.NewExponentialBackOff(
					backoff.WithInitialInterval(100*time.Millisecond),
					backoff.WithMaxInterval(time.Second),
					backoff.WithMaxElapsedTime(0))
			},
		},
		Stream: sse.Config{IdleTimeout: 500 * time.Millisecond},
	}
}

// runDemo starts the embedded fault gateway, calls it once per scenario
// through the full client stack, prints a row for each and a summary, and
// reports whether every scenario was classified as expected.
func runDemo(ctx context.Context, stdout io.Writer) bool {
	start := time.Now()
	model := &switchModel{}
	h1 := gatewaytest.NewServer(model)
	defer h1.Close()
	h2 := gatewaytest.NewTLSServer(model)
	defer h2.Close()
	c1 := middleware.NewClient(demoConfig(middleware.DefaultBase(streamguard.SyncBudget)))
	defer c1.CloseIdleConnections()
	c2 := middleware.NewClient(demoConfig(h2.Client().Transport))
	defer c2.CloseIdleConnections()

	fmt.Fprintf(stdout, "streamguard demo: each platform fault, through the full client stack (gateway %s and %s)\n\n", h1.URL, h2.URL)
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SCENARIO\tSTATUS\tSOURCE\tREASON\tREQUESTS\tRESUMES\tEVENTS\tVERDICT\tHINT")
	passed, ran := 0, 0
	all := scenarios()
	for _, sc := range all {
		if ctx.Err() != nil {
			break // interrupted: the scenarios left are not run
		}
		gw, client := h1, c1
		if sc.h2 {
			gw, client = h2, c2
		}
		model.set(sc.model)
		gw.Script(sc.script...)
		o := run(ctx, client, gw, sc)
		if ctx.Err() != nil {
			break // the interruption's cancellation, not this scenario's verdict
		}
		ran++
		verdict := "complete"
		if o.reason != "" {
			verdict = "failed"
		}
		ok := o.source == sc.source && o.reason == sc.reason && (o.reason != "" || o.err == nil) && o.resumes == sc.resume
		if ok {
			passed++
		} else {
			want := "success"
			if sc.reason != "" {
				want = string(sc.source) + "/" + string(sc.reason)
			}
			verdict = "UNEXPECTED (want " + want + ")"
		}
		status := "-"
		if o.status > 0 {
			status = strconv.Itoa(o.status)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%d\t%s\t%s\n", sc.name, status, dash(string(o.source)), dash(string(o.reason)),
			o.attempts, o.resumes, o.events, verdict, dash(o.hint))
	}
	tw.Flush()
	if ctx.Err() != nil {
		fmt.Fprintf(stdout, "\ninterrupted after %d of %d scenarios: %d/%d classified as expected\n", ran, len(all), passed, ran)
		return false
	}
	fmt.Fprintf(stdout, "\n%d/%d scenarios classified as expected in %.1fs\n", passed, len(all), time.Since(start).Seconds())
	return passed == len(all)
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// run makes one scenario's request and reads its answer to the end.
func run(ctx context.Context, client *http.Client, gw *gatewaytest.Server, sc scenario) outcome {
	before := gw.Requests()
	path := sc.path
	if path == "" {
		path = "/v1/chat/completions"
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var body io.Reader = strings.NewReader(`{"model":"m","stream":true}`)
	if sc.body > 0 {
		body = strings.NewReader(strings.Repeat(" ", sc.body))
	}
	req, _ := http.NewRequestWithContext(ctx, "POST", gw.URL+path, body)
	req.Header.Set("Content-Type", "application/json")
	o := outcome{}
	resp, err := client.Do(req)
	if err == nil {
		o.status = resp.StatusCode
		if err = streamguard.Check(resp); err == nil {
			o.events, err = countEvents(resp.Body)
		}
		resp.Body.Close()
	}
	o.attempts = gw.Requests() - before
	for _, rec := range gw.Gateway.Records() {
		if rec.N > before && rec.Header.Get("Last-Event-ID") != "" {
			o.resumes++
		}
	}
	o.err = err
	var se *streamguard.Error
	if errors.As(err, &se) {
		o.source, o.reason, o.hint = se.Source, se.Reason, se.Hint()
		if se.StatusCode > 0 {
			o.status = se.StatusCode
		}
		if se.Events > 0 {
			o.events = se.Events
		}
	} else if err != nil {
		o.source, o.reason, o.hint = streamguard.SourceUnknown, "unclassified", err.Error()
	}
	return o
}

// countEvents reads an SSE body to its end and counts its events.
func countEvents(r io.Reader) (int64, error) {
	buf := make([]byte, 32<<10)
	var n int64
	var prev byte
	for {
		k, err := r.Read(buf)
		for _, c := range buf[:k] {
			if c == '\n' && prev == '\n' {
				n++
			}
			prev = c
		}
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}

// switchModel is the model behind the demo's gateways; each scenario sets
// the one it needs.
type switchModel struct {
	h atomicHandler
}

func (m *switchModel) set(h http.Handler) {
	if h == nil {
		h = gatewaytest.ChatStream(10)
	}
	m.h.Store(&h)
}

func (m *switchModel) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := m.h.Load()
	if h == nil {
		gatewaytest.ChatStream(10).ServeHTTP(w, r)
		return
	}
	(*h).ServeHTTP(w, r)
}
