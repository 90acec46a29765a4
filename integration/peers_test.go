package integration

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/anthropics/anthropic-sdk-go/v2"
	aoption "github.com/anthropics/anthropic-sdk-go/v2/option"
	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/packages/ssestream"
	"github.com/openai/openai-go/v3/responses"
	goopenai "github.com/sashabaranov/go-openai"
	gosse "github.com/tmaxmax/go-sse"
)

// The peers' tests measure what the clients that streamguard is compared
// with do, on their own, with a broken stream: each client is used as its
// users use it, with a plain *http.Client and its own retries off, against
// a loopback server that breaks the stream on purpose. No streamguard code
// runs in them. Each cell pins what was measured, so that a test fails when
// a peer's behaviour changes and the README's comparison must be revisited.

// peerScenario is one way a stream can go, good or bad.
type peerScenario string

const (
	// The whole stream, terminal event included: the control.
	scComplete peerScenario = "complete"
	// HTTP/1.1 chunked: whole events, half an event, then the connection
	// is closed without the terminating zero-length chunk.
	scCutH1 peerScenario = "cut_mid_event_h1"
	// HTTP/2 over TLS: whole events, half an event, then the handler
	// aborts, which resets the stream.
	scCutH2 peerScenario = "cut_mid_event_h2"
	// Whole events, then the body ends cleanly at an event boundary,
	// without the dialect's terminal event.
	scCleanEnd peerScenario = "clean_end_without_terminal"
	// Whole events, then nothing: the server holds the stream open.
	scStall peerScenario = "stall"
	// Whole events, then the dialect's error event inside the 200 stream.
	scInBandError peerScenario = "in_band_error"
)

// peerStallDeadline is the deadline of the caller's context in the stall
// scenario: the caller's own bound, the only one a peer has.
const peerStallDeadline = 300 * time.Millisecond

// peerDialect is a streaming API's wire format, as a server sends it.
type peerDialect struct {
	name string
	// events is the stream without its terminal: whole SSE events.
	events []string
	// terminal is what ends a complete stream.
	terminal string
	// errorEvent is the in-band error event and what follows it.
	errorEvent string
	// cutAt is how many whole events precede the half event, the stall or
	// the error event.
	cutAt int
}

// tokenRE matches the text of one delta: every dialect's deltas carry
// "tok<i> ", and nothing else in the streams does.
var tokenRE = regexp.MustCompile(`tok\d+ `)

// tokens is how many deltas events hold.
func tokens(events []string) int {
	return len(tokenRE.FindAllString(strings.Join(events, ""), -1))
}

// chatDialect is OpenAI's Chat Completions stream, as vLLM and TGI's
// OpenAI-compatible route also send it.
func chatDialect() *peerDialect {
	d := &peerDialect{
		name:     "chat",
		terminal: "data: [DONE]\n\n",
		errorEvent: `data: {"error": {"message": "boom", "type": "server_error"}}` + "\n\n" +
			"data: [DONE]\n\n",
		cutAt: 3,
	}
	for i := range 6 {
		d.events = append(d.events, fmt.Sprintf(
			`data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"tok%d "},"finish_reason":null}]}`+"\n\n", i))
	}
	return d
}

// anthropicDialect is Anthropic's Messages stream.
func anthropicDialect() *peerDialect {
	d := &peerDialect{
		name:     "anthropic",
		terminal: "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
		errorEvent: "event: error\n" +
			`data: {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}` + "\n\n",
		cutAt: 6, // message_start, content_block_start, ping, three deltas
	}
	d.events = []string{
		"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-test\",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null}}\n\n",
		"event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
		"event: ping\ndata: {\"type\": \"ping\"}\n\n",
	}
	for i := range 6 {
		d.events = append(d.events, fmt.Sprintf(
			"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"tok%d \"}}\n\n", i))
	}
	d.events = append(d.events,
		"event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
		"event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\",\"stop_sequence\":null}}\n\n",
	)
	return d
}

// responsesDialect is OpenAI's Responses stream.
func responsesDialect() *peerDialect {
	d := &peerDialect{
		name: "responses",
		terminal: "event: response.completed\n" +
			`data: {"type":"response.completed","sequence_number":99,"response":{"id":"resp_1","object":"response","created_at":1,"status":"completed","model":"m","output":[]}}` + "\n\n",
		errorEvent: "event: error\n" +
			`data: {"type":"error","code":"server_error","message":"boom","sequence_number":3}` + "\n\n",
		cutAt: 4, // response.created, response.in_progress, two deltas
	}
	d.events = []string{
		"event: response.created\n" +
			`data: {"type":"response.created","sequence_number":0,"response":{"id":"resp_1","object":"response","created_at":1,"status":"in_progress","model":"m","output":[]}}` + "\n\n",
		"event: response.in_progress\n" +
			`data: {"type":"response.in_progress","sequence_number":1,"response":{"id":"resp_1","object":"response","created_at":1,"status":"in_progress","model":"m","output":[]}}` + "\n\n",
	}
	for i := range 6 {
		d.events = append(d.events, fmt.Sprintf("event: response.output_text.delta\n"+
			`data: {"type":"response.output_text.delta","item_id":"msg_1","output_index":0,"content_index":0,"delta":"tok%d ","sequence_number":%d}`+"\n\n", i, i+2))
	}
	return d
}

// peerHandler serves d as broken by sc.
func peerHandler(t *testing.T, d *peerDialect, sc peerScenario) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, io.LimitReader(r.Body, 1<<20))
		if want := map[bool]int{true: 2, false: 1}[sc == scCutH2]; r.ProtoMajor != want {
			t.Errorf("the request came over HTTP/%d, want HTTP/%d", r.ProtoMajor, want)
		}
		w.Header().Set("Content-Type", "text/event-stream")
		w.Header().Set("Cache-Control", "no-cache")
		w.WriteHeader(http.StatusOK)
		rc := http.NewResponseController(w)
		send := func(s string) {
			_, _ = io.WriteString(w, s)
			_ = rc.Flush()
		}
		switch sc {
		case scComplete:
			for _, ev := range d.events {
				send(ev)
			}
			send(d.terminal)
		case scCleanEnd:
			for _, ev := range d.events {
				send(ev)
			}
		case scInBandError:
			for _, ev := range d.events[:d.cutAt] {
				send(ev)
			}
			send(d.errorEvent)
		case scStall:
			for _, ev := range d.events[:d.cutAt] {
				send(ev)
			}
			// Held until the client goes away, which the caller's deadline
			// makes it do; bounded all the same.
			bound := time.NewTimer(testTimeout)
			defer bound.Stop()
			select {
			case <-r.Context().Done():
			case <-bound.C:
				t.Errorf("the client never went away from the stalled stream")
			}
		case scCutH1, scCutH2:
			for _, ev := range d.events[:d.cutAt] {
				send(ev)
			}
			half := d.events[d.cutAt]
			send(half[:len(half)/2])
			if sc == scCutH2 {
				panic(http.ErrAbortHandler) // RST_STREAM
			}
			conn, _, err := rc.Hijack()
			if err != nil {
				t.Errorf("hijack: %v", err)
				return
			}
			conn.Close() // no zero-length chunk
		}
	})
}

// peerServer starts a loopback server of d broken by sc and returns it and
// a plain *http.Client for it: HTTP/2 over TLS for scCutH2, HTTP/1.1
// otherwise.
func peerServer(t *testing.T, d *peerDialect, sc peerScenario) (*httptest.Server, *http.Client) {
	t.Helper()
	h := peerHandler(t, d, sc)
	if sc == scCutH2 {
		srv := httptest.NewUnstartedServer(h)
		srv.EnableHTTP2 = true
		srv.StartTLS()
		t.Cleanup(srv.Close)
		hc := srv.Client() // its transport has ForceAttemptHTTP2 and the server's certificate
		t.Cleanup(hc.CloseIdleConnections)
		return srv, hc
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	return srv, &http.Client{Transport: tr}
}

// peerResult is what a peer made of a stream.
type peerResult struct {
	tokens int // the deltas it delivered
	// errorEvent: it delivered the in-band error event to the caller as an
	// ordinary event.
	errorEvent bool
	err        error // what it reported at the end; nil is success
}

// maxPeerEvents bounds every peer's read loop.
const maxPeerEvents = 1000

var errTooManyEvents = errors.New("more events than any test stream has")

// peer is one client library, driven as its users drive it.
type peer struct {
	name    string
	dialect func() *peerDialect
	run     func(ctx context.Context, base string, hc *http.Client) peerResult
}

func runOpenAIChat(ctx context.Context, base string, hc *http.Client) (res peerResult) {
	client := openai.NewClient(
		option.WithBaseURL(base+"/v1/"),
		option.WithHTTPClient(hc),
		option.WithAPIKey("sk-test-key"),
		option.WithMaxRetries(0),
	)
	stream := client.Chat.Completions.NewStreaming(ctx, openai.ChatCompletionNewParams{
		Model:    "m",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")},
	})
	defer stream.Close()
	for n := 0; stream.Next(); n++ {
		if n == maxPeerEvents {
			return peerResult{tokens: res.tokens, err: errTooManyEvents}
		}
		for _, c := range stream.Current().Choices {
			res.tokens += len(tokenRE.FindAllString(c.Delta.Content, -1))
		}
	}
	res.err = stream.Err()
	return res
}

func runOpenAIResponses(ctx context.Context, base string, hc *http.Client) (res peerResult) {
	client := openai.NewClient(
		option.WithBaseURL(base+"/v1/"),
		option.WithHTTPClient(hc),
		option.WithAPIKey("sk-test-key"),
		option.WithMaxRetries(0),
	)
	stream := client.Responses.NewStreaming(ctx, responses.ResponseNewParams{
		Model: "m",
		Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("hi")},
	})
	defer stream.Close()
	for n := 0; stream.Next(); n++ {
		if n == maxPeerEvents {
			return peerResult{tokens: res.tokens, err: errTooManyEvents}
		}
		switch ev := stream.Current(); ev.Type {
		case "response.output_text.delta":
			res.tokens += len(tokenRE.FindAllString(ev.Delta, -1))
		case "error":
			if e := ev.AsError(); e.Code == "server_error" && e.Message == "boom" {
				res.errorEvent = true
			}
		}
	}
	res.err = stream.Err()
	return res
}

func runGoOpenAI(ctx context.Context, base string, hc *http.Client) (res peerResult) {
	cfg := goopenai.DefaultConfig("sk-test-key")
	cfg.BaseURL = base + "/v1"
	cfg.HTTPClient = hc
	client := goopenai.NewClientWithConfig(cfg)
	stream, err := client.CreateChatCompletionStream(ctx, goopenai.ChatCompletionRequest{
		Model:    "m",
		Messages: []goopenai.ChatCompletionMessage{{Role: goopenai.ChatMessageRoleUser, Content: "hi"}},
	})
	if err != nil {
		return peerResult{err: err}
	}
	defer stream.Close()
	for range maxPeerEvents {
		chunk, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return res // go-openai's success
		}
		if err != nil {
			res.err = err
			return res
		}
		for _, c := range chunk.Choices {
			res.tokens += len(tokenRE.FindAllString(c.Delta.Content, -1))
		}
	}
	res.err = errTooManyEvents
	return res
}

func runAnthropic(ctx context.Context, base string, hc *http.Client) (res peerResult) {
	client := anthropic.NewClient(
		aoption.WithoutEnvironmentDefaults(), // no key, URL or profile from this machine
		aoption.WithBaseURL(base+"/"),
		aoption.WithHTTPClient(hc),
		aoption.WithAPIKey("sk-ant-test-key"),
		aoption.WithMaxRetries(0),
	)
	stream := client.Messages.NewStreaming(ctx, anthropic.MessageNewParams{
		Model:     anthropic.Model("claude-test"),
		MaxTokens: 64,
		Messages:  []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("hi"))},
	})
	defer stream.Close()
	for n := 0; stream.Next(); n++ {
		if n == maxPeerEvents {
			return peerResult{tokens: res.tokens, err: errTooManyEvents}
		}
		if ev := stream.Current(); ev.Type == "content_block_delta" {
			res.tokens += len(tokenRE.FindAllString(ev.Delta.Text, -1))
		}
	}
	res.err = stream.Err()
	return res
}

// runGoSSE reads the OpenAI chat stream with go-sse's Read, the way the
// README's usage example reads it, minus streamguard.
func runGoSSE(ctx context.Context, base string, hc *http.Client) (res peerResult) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v1/chat/completions",
		strings.NewReader(`{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]}`))
	if err != nil {
		return peerResult{err: err}
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return peerResult{err: err}
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return peerResult{err: fmt.Errorf("status %s", resp.Status)}
	}
	n := 0
	for ev, err := range gosse.Read(resp.Body, nil) {
		if err != nil {
			res.err = err
			return res
		}
		if n++; n > maxPeerEvents {
			res.err = errTooManyEvents
			return res
		}
		switch {
		case ev.Data == "[DONE]":
		case strings.Contains(ev.Data, `"error"`):
			res.errorEvent = true
		default:
			res.tokens += len(tokenRE.FindAllString(ev.Data, -1))
		}
	}
	return res
}

// peerOutcome is what a peer did in a scenario, as measured.
type peerOutcome int

const (
	// succeeds: no error, every event before the end delivered.
	succeeds peerOutcome = iota
	// reportsError: an error that is not the caller's context's, after the
	// whole events before the break.
	reportsError
	// hangsUntilDeadline: no return of its own; it returned only with the
	// caller's context's deadline error.
	hangsUntilDeadline
	// errorAsEvent: no error; the in-band error event was delivered as an
	// ordinary event.
	errorAsEvent
	// errorEventIgnored: no error, and the in-band error event was not
	// delivered either: the failure vanished.
	errorEventIgnored
)

func (o peerOutcome) String() string {
	return [...]string{"succeeds", "reports an error", "hangs until the caller's deadline",
		"delivers the error event as an ordinary event", "drops the error event silently"}[o]
}

// peerCell is one measured cell: what the peer did, and the text of the
// error it returned, with the server's address replaced by ADDR.
type peerCell struct {
	outcome peerOutcome
	errKind string // what the error is: see errKind
	errText string
}

// errKind names what err is, and for an API error the type and the status
// it carries: all a caller has to tell whose fault it was.
func errKind(err error) string {
	var (
		streamErr    *ssestream.StreamError
		goOpenAIErr  *goopenai.APIError
		anthropicErr *anthropic.Error
	)
	switch {
	case err == nil:
		return ""
	case errors.As(err, &streamErr):
		return "*ssestream.StreamError"
	case errors.As(err, &goOpenAIErr):
		return fmt.Sprintf("*openai.APIError type=%s status=%d", goOpenAIErr.Type, goOpenAIErr.HTTPStatusCode)
	case errors.As(err, &anthropicErr):
		return fmt.Sprintf("*anthropic.Error type=%s status=%d", anthropicErr.Type(), anthropicErr.StatusCode)
	case err == io.ErrUnexpectedEOF: // the very value, unwrapped, is what is measured
		return "io.ErrUnexpectedEOF"
	case err == context.DeadlineExceeded:
		return "context.DeadlineExceeded"
	default:
		return fmt.Sprintf("%T", err)
	}
}

// addrRE matches the loopback server's address in an error's text.
var addrRE = regexp.MustCompile(`127\.0\.0\.1:\d+`)

// TestPeerUnguarded measures each peer, unguarded, in each scenario, and
// pins what was measured: a failing cell means a peer changed and the
// README's comparison table must follow. None of the errors says who
// failed; the texts are pinned so that this stays checked too.
func TestPeerUnguarded(t *testing.T) {
	peers := []peer{
		{"openai-go_chat", chatDialect, runOpenAIChat},
		{"openai-go_responses", responsesDialect, runOpenAIResponses},
		{"go-openai_chat", chatDialect, runGoOpenAI},
		{"anthropic-sdk-go_messages", anthropicDialect, runAnthropic},
		{"go-sse_read", chatDialect, runGoSSE},
	}
	// want is the measured table. The texts of cut errors come from
	// net/http (HTTP/1.1: the chunked reader; HTTP/2: the peer's
	// RST_STREAM) and are the same in every peer that passes them on.
	const (
		cutH1 = "unexpected EOF"
		cutH2 = "stream error: stream ID 1; INTERNAL_ERROR; received from peer"
		ctxDL = "context deadline exceeded"
	)
	var (
		ok           = peerCell{succeeds, "", ""}
		asEvent      = peerCell{errorAsEvent, "", ""}
		cutH1Cell    = peerCell{reportsError, "io.ErrUnexpectedEOF", cutH1}
		cutH2Cell    = peerCell{reportsError, "http.http2StreamError", cutH2}
		deadlineCell = peerCell{hangsUntilDeadline, "context.DeadlineExceeded", ctxDL}
	)
	want := map[string]map[peerScenario]peerCell{
		"openai-go_chat": {
			scComplete:    ok,
			scCutH1:       cutH1Cell,
			scCutH2:       cutH2Cell,
			scCleanEnd:    ok,
			scStall:       deadlineCell,
			scInBandError: {reportsError, "*ssestream.StreamError", `received error while streaming: {"message": "boom", "type": "server_error"}`},
		},
		"openai-go_responses": {
			scComplete:    ok,
			scCutH1:       cutH1Cell,
			scCutH2:       cutH2Cell,
			scCleanEnd:    ok,
			scStall:       deadlineCell,
			scInBandError: asEvent,
		},
		"go-openai_chat": {
			scComplete:    ok,
			scCutH1:       cutH1Cell,
			scCutH2:       cutH2Cell,
			scCleanEnd:    ok,
			scStall:       deadlineCell,
			scInBandError: {reportsError, "*openai.APIError type=server_error status=0", "error, boom"},
		},
		"anthropic-sdk-go_messages": {
			scComplete: ok,
			scCutH1:    cutH1Cell,
			scCutH2:    cutH2Cell,
			scCleanEnd: ok,
			scStall:    deadlineCell,
			scInBandError: {reportsError, "*anthropic.Error type=overloaded_error status=200",
				`POST "http://ADDR/v1/messages": 200 OK {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}`},
		},
		"go-sse_read": {
			scComplete:    ok,
			scCutH1:       cutH1Cell,
			scCutH2:       cutH2Cell,
			scCleanEnd:    ok,
			scStall:       deadlineCell,
			scInBandError: asEvent,
		},
	}
	scenarios := []peerScenario{scComplete, scCutH1, scCutH2, scCleanEnd, scStall, scInBandError}

	for _, p := range peers {
		t.Run(p.name, func(t *testing.T) {
			for _, sc := range scenarios {
				t.Run(string(sc), func(t *testing.T) {
					d := p.dialect()
					srv, hc := peerServer(t, d, sc)
					ctx := testContext(t)
					if sc == scStall {
						var cancel context.CancelFunc
						ctx, cancel = context.WithTimeout(ctx, peerStallDeadline)
						defer cancel()
					}
					start := time.Now()
					res := p.run(ctx, srv.URL, hc)
					elapsed := time.Since(start)

					got := measure(ctx, t, d, sc, res)
					t.Logf("%s after %v: %s; %d deltas; error %s %q", sc, elapsed.Round(time.Millisecond), got.outcome, res.tokens, got.errKind, got.errText)
					if w := want[p.name][sc]; got != w {
						t.Errorf("measured %s, error %s %q\n  pinned %s, error %s %q", got.outcome, got.errKind, got.errText, w.outcome, w.errKind, w.errText)
					}
					if res.err != nil && strings.Contains(strings.ToLower(res.err.Error()), "streamguard") {
						t.Errorf("streamguard ran: %v", res.err)
					}
				})
			}
		})
	}
}

// measure classifies res, checking what every outcome implies: how many
// deltas came before the end, and whether the caller's context ended.
func measure(ctx context.Context, t *testing.T, d *peerDialect, sc peerScenario, res peerResult) peerCell {
	t.Helper()
	wantTokens := tokens(d.events[:d.cutAt]) // before a cut, a stall or an error event
	if sc == scComplete || sc == scCleanEnd {
		wantTokens = tokens(d.events)
	}
	if res.tokens != wantTokens {
		t.Errorf("%d deltas delivered, want the %d whole ones sent", res.tokens, wantTokens)
	}
	cell := peerCell{errKind: errKind(res.err)}
	if res.err != nil {
		cell.errText = addrRE.ReplaceAllString(res.err.Error(), "ADDR")
	}
	switch {
	case res.err == nil && res.errorEvent:
		cell.outcome = errorAsEvent
	case res.err == nil && sc == scInBandError:
		cell.outcome = errorEventIgnored
	case res.err == nil:
		cell.outcome = succeeds
	case errors.Is(res.err, context.DeadlineExceeded) && ctx.Err() != nil:
		cell.outcome = hangsUntilDeadline
	default:
		cell.outcome = reportsError
	}
	return cell
}
