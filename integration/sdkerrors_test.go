package integration

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anthropics/anthropic-sdk-go/v2"
	aoption "github.com/anthropics/anthropic-sdk-go/v2/option"
	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/packages/ssestream"
	goopenai "github.com/sashabaranov/go-openai"
	"github.com/streamguard/streamguard"
	"github.com/streamguard/streamguard/gatewaytest"
	"github.com/streamguard/streamguard/internal/platform"
	"github.com/streamguard/streamguard/middleware"
	"github.com/streamguard/streamguard/retry"
	"github.com/streamguard/streamguard/sse"
)

// The SDK error tests drive the three Go SDKs through middleware.NewClient,
// as their users would use it: the stack is the SDK's only HTTP client, and
// the SDK's own retries are off. TestSDKErrorStatuses checks what a caller
// gets from a final error status in every body shape the platform (or a
// proxy in front of it) sends; TestSDKFailureFrame checks what it gets from
// a stream cut after its 200, with and without the failure frame.

// sdkErrBody is one final error response: a status of the platform's guide
// in one of the body shapes it comes in.
type sdkErrBody struct {
	shape       string // json_string, baseten, text, html or empty
	status      int
	contentType string // "" sends none
	header      http.Header
	body        string
}

func (b sdkErrBody) name() string { return fmt.Sprintf("%d_%s", b.status, b.shape) }

// sdkErrMessages are the messages the platform sends with each status, and
// the Baseten error_code that goes with it.
var sdkErrMessages = []struct {
	status  int
	message string
	code    string
}{
	{400, "Invalid JSON in request body", "client_error"},
	{401, "Invalid API key", "unauthorized"},
	{403, "API key does not have access to this model", "unauthorized"},
	{404, "Model not found", "model_does_not_exist"},
	{413, platform.TooLargeMessage(streamguard.EdgeMaxBody+1, streamguard.EdgeMaxBody), "payload_too_large"},
	{429, gatewaytest.MessageRateLimited, "CAPACITY_EXCEEDED"},
	{500, "Internal Server Error (in model/chainlet).", "application_error"},
	{502, gatewaytest.MessageUnreachable, "model_unavailable"},
	{503, gatewaytest.MessageDraining, "model_not_ready"},
	{504, gatewaytest.MessageTimeout, "timeout"},
}

// nginxPage is the page nginx sends for a status of its own.
func nginxPage(status int) string {
	title := fmt.Sprintf("%d %s", status, http.StatusText(status))
	return "<html>\r\n<head><title>" + title + "</title></head>\r\n<body>\r\n<center><h1>" + title +
		"</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
}

// sdkErrBodies is every status of the platform's guide in every shape it
// comes in: the platform's {"error": "<string>"}, Baseten's ErrorResponse
// with its error_code, plain text, nginx's HTML page (502, 503, 504 only:
// the proxy's own statuses), and no body at all. A 429 carries Retry-After,
// as the platform sends it.
func sdkErrBodies() []sdkErrBody {
	var rows []sdkErrBody
	for _, m := range sdkErrMessages {
		h := http.Header{}
		if m.status == http.StatusTooManyRequests {
			h.Set("Retry-After", "1")
		}
		jsonString, _ := json.Marshal(map[string]string{"error": m.message})
		baseten, _ := json.Marshal(map[string]string{"error": m.message, "error_code": m.code})
		rows = append(rows,
			sdkErrBody{"json_string", m.status, "application/json", h, string(jsonString)},
			sdkErrBody{"baseten", m.status, "application/json", h, string(baseten)},
			sdkErrBody{"text", m.status, "text/plain; charset=utf-8", h, m.message + "\n"},
		)
		if m.status >= 502 {
			rows = append(rows, sdkErrBody{"html", m.status, "text/html", h, nginxPage(m.status)})
		}
		rows = append(rows, sdkErrBody{"empty", m.status, "", h, ""})
	}
	return rows
}

// expected classifies b as the stack's final layer does, from the status,
// the headers and the body, so that the test does not repeat the
// library's table.
func (b sdkErrBody) expected() *streamguard.Error {
	h := b.header.Clone()
	if b.contentType != "" {
		h.Set("Content-Type", b.contentType)
	}
	return streamguard.Classify(&http.Response{StatusCode: b.status, Header: h}, []byte(b.body))
}

// wantHint returns the parts of the hint that an error classified as want
// carries after the stack sent the request attempts times: the hint itself
// for one attempt; for more, the count of attempts and the hint that
// replaces the advice to retry (its elapsed time, which the test does not
// know, left out).
func wantHint(want *streamguard.Error, attempts int64) []string {
	if attempts <= 1 {
		return []string{want.Hint()}
	}
	retried := *want
	retried.Attempts, retried.Elapsed = int(attempts), time.Hour
	_, after, _ := strings.Cut(retried.Hint(), " failed: ")
	return []string{fmt.Sprintf("after %d attempts", attempts), fmt.Sprintf("(%d attempts over ", attempts), " failed: " + after + ")"}
}

// sdkErrServer answers every request with b and counts the requests.
func sdkErrServer(t *testing.T, b sdkErrBody, hits *atomic.Int64) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, io.LimitReader(r.Body, 1<<20))
		hits.Add(1)
		for k, v := range b.header {
			w.Header()[k] = v
		}
		if b.contentType != "" {
			w.Header().Set("Content-Type", b.contentType)
		}
		w.Header().Set("Content-Length", strconv.Itoa(len(b.body)))
		w.WriteHeader(b.status)
		_, _ = io.WriteString(w, b.body)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// sdkErrView is what a caller gets out of an SDK's error without parsing
// its text: the error type errors.As reaches, the HTTP status it carries,
// its message and type fields, and the source and reason where the SDK
// exposes the document's own fields.
type sdkErrView struct {
	kind    string // the SDK's error type that errors.As reaches; "" for none
	status  int    // -1: the caller cannot get the status
	message string // the SDK error's message field
	typ     string // its type field
	source  string // structured: "" when the SDK exposes no such field
	reason  string
	code    string
}

// sdkCaller is one SDK's call, as its users make it.
type sdkCaller struct {
	name string
	call func(ctx context.Context, base string, hc *http.Client) error
	view func(err error) sdkErrView
	// printsMessage: the SDK's Error() text includes the body's message,
	// and so the source, reason and hint. openai-go's does not: it prints
	// only "OpenAI API error: 503 Service Unavailable", and the caller
	// reads the rest in the *openai.Error's Message field.
	printsMessage bool
	// structured: the source and reason are readable as fields of their
	// own (openai-go: the error object's extra fields; anthropic: the
	// raw JSON of the whole document). go-openai keeps no field outside
	// message, type, code and param: the source is only in the message.
	structured bool
}

func newOpenAIGo(base string, hc *http.Client) openai.Client {
	return openai.NewClient(
		option.WithBaseURL(base+"/v1/"),
		option.WithHTTPClient(hc),
		option.WithAPIKey("sk-test-key"),
		option.WithMaxRetries(0),
	)
}

var sdkChatParams = openai.ChatCompletionNewParams{
	Model:    "m",
	Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")},
}

// extraString is the string value of one of an openai-go error object's
// extra fields.
func extraString(e *openai.Error, key string) string {
	f, ok := e.JSON.ExtraFields[key]
	if !ok {
		return ""
	}
	var s string
	_ = json.Unmarshal([]byte(f.Raw()), &s)
	return s
}

func viewOpenAIGo(err error) sdkErrView {
	var oe *openai.Error
	if !errors.As(err, &oe) {
		return sdkErrView{status: -1}
	}
	return sdkErrView{
		kind: "*openai.Error", status: oe.StatusCode, message: oe.Message, typ: oe.Type, code: oe.Code,
		source: extraString(oe, "source"), reason: extraString(oe, "reason"),
	}
}

func viewGoOpenAI(err error) sdkErrView {
	var (
		ae *goopenai.APIError
		re *goopenai.RequestError
	)
	// The *RequestError first: it may wrap an empty *APIError (see the
	// control row), whose HTTPStatusCode is 0.
	switch {
	case errors.As(err, &re):
		// The body was not an error object go-openai parses: the status
		// is kept, the body is raw bytes.
		return sdkErrView{kind: "*goopenai.RequestError", status: re.HTTPStatusCode, message: string(re.Body)}
	case errors.As(err, &ae):
		code, _ := ae.Code.(string)
		return sdkErrView{kind: "*goopenai.APIError", status: ae.HTTPStatusCode, message: ae.Message, typ: ae.Type, code: code}
	}
	return sdkErrView{status: -1}
}

func viewAnthropic(err error) sdkErrView {
	var ae *anthropic.Error
	if !errors.As(err, &ae) {
		return sdkErrView{status: -1}
	}
	v := sdkErrView{kind: "*anthropic.Error", status: ae.StatusCode, message: ae.Message, typ: string(ae.Type())}
	var doc struct {
		Source string `json:"source"`
		Reason string `json:"reason"`
		Error  struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	if json.Unmarshal([]byte(ae.RawJSON()), &doc) == nil {
		v.source, v.reason, v.code = doc.Source, doc.Reason, doc.Error.Code
	}
	return v
}

// maxSDKEvents bounds the read loop of a stream that answered an error
// status, which should deliver no event at all.
const maxSDKEvents = 10

func sdkCallers() []sdkCaller {
	return []sdkCaller{
		{
			name: "openai-go_chat",
			call: func(ctx context.Context, base string, hc *http.Client) error {
				client := newOpenAIGo(base, hc)
				_, err := client.Chat.Completions.New(ctx, sdkChatParams)
				return err
			},
			view:       viewOpenAIGo,
			structured: true,
		},
		{
			name: "openai-go_chat_streaming",
			call: func(ctx context.Context, base string, hc *http.Client) error {
				client := newOpenAIGo(base, hc)
				stream := client.Chat.Completions.NewStreaming(ctx, sdkChatParams)
				defer stream.Close()
				for n := 0; stream.Next(); n++ {
					if n == maxSDKEvents {
						return errTooManyEvents
					}
				}
				return stream.Err()
			},
			view:       viewOpenAIGo,
			structured: true,
		},
		{
			name: "go-openai_chat",
			call: func(ctx context.Context, base string, hc *http.Client) error {
				cfg := goopenai.DefaultConfig("sk-test-key")
				cfg.BaseURL = base + "/v1"
				cfg.HTTPClient = hc
				_, err := goopenai.NewClientWithConfig(cfg).CreateChatCompletion(ctx, goopenai.ChatCompletionRequest{
					Model:    "m",
					Messages: []goopenai.ChatCompletionMessage{{Role: goopenai.ChatMessageRoleUser, Content: "hi"}},
				})
				return err
			},
			view:          viewGoOpenAI,
			printsMessage: true,
		},
		{
			name: "anthropic-sdk-go_messages",
			call: func(ctx context.Context, base string, hc *http.Client) error {
				client := anthropic.NewClient(
					aoption.WithoutEnvironmentDefaults(),
					aoption.WithBaseURL(base+"/"),
					aoption.WithHTTPClient(hc),
					aoption.WithAPIKey("sk-ant-test-key"),
					aoption.WithMaxRetries(0),
				)
				_, err := client.Messages.New(ctx, anthropic.MessageNewParams{
					Model:     anthropic.Model("claude-test"),
					MaxTokens: 64,
					Messages:  []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("hi"))},
				})
				return err
			},
			view:          viewAnthropic,
			printsMessage: true,
			structured:    true,
		},
	}
}

// sdkErrStack is the stack each call gets: retries of 502, 503 and hinted
// 429 on a 1 ms schedule, the 429's Retry-After capped to 1 ms.
func sdkErrStack(t *testing.T, raw bool) *http.Client {
	t.Helper()
	hc := middleware.NewClient(middleware.Config{
		Retry:          retry.Policy{Backoff: fastBackoff, MaxRetryAfter: time.Millisecond},
		RawErrorBodies: raw,
	})
	t.Cleanup(hc.CloseIdleConnections)
	return hc
}

// TestSDKErrorStatuses checks, for every SDK, every status of the
// platform's guide and every body shape, that the caller of the SDK gets
// its typed error with the HTTP status, and the source and reason in its
// message and type: the stack conformed the body to the error document.
func TestSDKErrorStatuses(t *testing.T) {
	callers := sdkCallers()
	for _, b := range sdkErrBodies() {
		t.Run(b.name(), func(t *testing.T) {
			want := b.expected()
			var hits atomic.Int64
			srv := sdkErrServer(t, b, &hits)
			line := fmt.Sprintf("streamguard: %d %s %s", b.status, want.Source, want.Reason)
			for _, c := range callers {
				t.Run(c.name, func(t *testing.T) {
					hits.Store(0)
					err := c.call(testContext(t), srv.URL, sdkErrStack(t, false))
					if err == nil {
						t.Fatalf("no error from a %d", b.status)
					}
					v := c.view(err)
					t.Logf("%d requests; %s status=%d type=%q code=%q source=%q reason=%q; message %q; Error() %q",
						hits.Load(), v.kind, v.status, v.typ, v.code, v.source, v.reason, v.message, err.Error())
					if v.kind == "" || v.status != b.status {
						t.Fatalf("the caller gets %T (%v), no %d in the SDK's error type", err, err, b.status)
					}
					if c.name == "go-openai_chat" && v.kind != "*goopenai.APIError" {
						t.Errorf("go-openai returned %s, want *goopenai.APIError: the body was not conformed", v.kind)
					}
					if !strings.Contains(v.message, line) {
						t.Errorf("message %q does not contain %q", v.message, line)
					}
					for _, h := range wantHint(want, hits.Load()) {
						if !strings.Contains(v.message, h) {
							t.Errorf("message %q does not contain the hint's %q", v.message, h)
						}
					}
					if v.typ != string(want.Reason) {
						t.Errorf("type %q, want the reason %q", v.typ, want.Reason)
					}
					wantCode := want.Code
					if wantCode == "" {
						wantCode = string(want.Reason)
					}
					if v.code != wantCode {
						t.Errorf("code %q, want %q", v.code, wantCode)
					}
					if got := strings.Contains(err.Error(), line); got != c.printsMessage {
						t.Errorf("Error() %q contains %q: %v, pinned %v", err.Error(), line, got, c.printsMessage)
					}
					if c.structured && (v.source != string(want.Source) || v.reason != string(want.Reason)) {
						t.Errorf("structured source/reason %q/%q, want %s/%s", v.source, v.reason, want.Source, want.Reason)
					}
				})
			}
		})
	}

	// The control: with RawErrorBodies, the platform's {"error": "<string>"}
	// 503 reaches each SDK as the platform sent it, which is why the stack
	// conforms it by default.
	t.Run("control_raw_503_json_string", func(t *testing.T) {
		b := sdkErrBody{"json_string", http.StatusServiceUnavailable, "application/json", http.Header{},
			`{"error":"` + gatewaytest.MessageDraining + `"}`}
		var hits atomic.Int64
		srv := sdkErrServer(t, b, &hits)
		// pinned is what each SDK makes of the raw body, as measured.
		pinned := map[string]struct {
			kind    string // "" : the caller cannot reach the SDK's error type
			status  int
			message string
			typ     string
			errType string // the dynamic type of the returned error
		}{
			// openai-go unmarshals the "error" member, a string, into its
			// error object, fails, and returns the JSON decoding error: the
			// caller loses the status and the SDK's error type altogether.
			"openai-go_chat":           {"", -1, "", "", "*json.UnmarshalTypeError"},
			"openai-go_chat_streaming": {"", -1, "", "", "*json.UnmarshalTypeError"},
			// go-openai keeps the status in a *RequestError whose Body is
			// the raw body; its Err is the *APIError it failed to fill,
			// empty (checked below): errors.As to *APIError, the usual
			// check, succeeds with HTTPStatusCode 0, no type, no message.
			"go-openai_chat": {"*goopenai.RequestError", 503, `{"error":"` + gatewaytest.MessageDraining + `"}`, "", "*openai.RequestError"},
			// anthropic-sdk-go keeps the status, but finds no error.message
			// nor error.type: the caller has a 503 and the raw body only.
			"anthropic-sdk-go_messages": {"*anthropic.Error", 503, "", "", "*apierror.Error"},
		}
		for _, c := range callers {
			t.Run(c.name, func(t *testing.T) {
				hits.Store(0)
				err := c.call(testContext(t), srv.URL, sdkErrStack(t, true))
				if err == nil {
					t.Fatal("no error from a 503")
				}
				v := c.view(err)
				t.Logf("raw body: %d requests; %T: %q; %s status=%d type=%q message=%q",
					hits.Load(), err, err.Error(), v.kind, v.status, v.typ, v.message)
				p := pinned[c.name]
				if v.kind != p.kind || v.status != p.status || v.message != p.message || v.typ != p.typ ||
					fmt.Sprintf("%T", err) != p.errType {
					t.Errorf("measured %T %s status=%d message=%q type=%q\n  pinned %s %s status=%d message=%q type=%q",
						err, v.kind, v.status, v.message, v.typ, p.errType, p.kind, p.status, p.message, p.typ)
				}
				if c.name == "go-openai_chat" {
					// go-openai's *RequestError wraps the *APIError it failed
					// to fill: errors.As to *APIError, the usual check, finds
					// it, with no status, type or message.
					var ae *goopenai.APIError
					if !errors.As(err, &ae) || ae.HTTPStatusCode != 0 || ae.Message != "" || ae.Type != "" {
						t.Errorf("errors.As(err, *APIError) = %v, %+v; pinned: an empty *APIError", ae != nil, ae)
					}
				}
				if strings.Contains(err.Error(), "streamguard") || strings.Contains(v.message, "streamguard") {
					t.Errorf("the raw body was conformed: %v", err)
				}
			})
		}
	})
}

// frameSDK is one SDK's stream, read as its users read it, over a dialect
// whose cut comes after exactly 2 whole delta events.
type frameSDK struct {
	name    string
	dialect func() *peerDialect
	run     func(ctx context.Context, base string, hc *http.Client) peerResult
	// frameErr is errKind of the error the SDK stops with at the failure
	// frame, as measured.
	frameErr string
	// plainReaches: with FailureEvent off, errors.As reaches the
	// *streamguard.Error the guarded body's Read returned, as measured.
	plainReaches bool
	// document returns the frame's data where the SDK's error keeps it
	// whole, for streamguard.ClassifyEvent to read back; nil when the SDK
	// keeps only its message and type (go-openai).
	document func(err error) []byte
}

// streamErrorData is the data of the event an openai-go stream stopped at.
func streamErrorData(err error) []byte {
	var se *ssestream.StreamError
	if !errors.As(err, &se) {
		return nil
	}
	return se.Event.Data
}

// anthropicRaw is the raw JSON an *anthropic.Error was built from.
func anthropicRaw(err error) []byte {
	var ae *anthropic.Error
	if !errors.As(err, &ae) {
		return nil
	}
	return []byte(ae.RawJSON())
}

// withCut returns d cut after its first n events.
func withCut(d func() *peerDialect, n int) func() *peerDialect {
	return func() *peerDialect {
		dd := d()
		dd.cutAt = n
		return dd
	}
}

// TestSDKFailureFrame cuts a stream after 2 whole delta events and half of
// the third, over HTTP/1.1 (the connection closed without the terminating
// chunk) and HTTP/2 (the stream reset), and checks what each SDK reports
// through the stack: with sse.Config.FailureEvent, its own error type at
// the failure frame, its text carrying the source, reason and hint; without
// it, the *streamguard.Error itself.
func TestSDKFailureFrame(t *testing.T) {
	sdks := []frameSDK{
		// chat: two chunks.
		{"openai-go_chat", withCut(chatDialect, 2), runOpenAIChat, "*ssestream.StreamError", true, streamErrorData},
		// responses: response.created, response.in_progress, two deltas.
		{"openai-go_responses", withCut(responsesDialect, 4), runOpenAIResponses, "*ssestream.StreamError", true, streamErrorData},
		{"go-openai_chat", withCut(chatDialect, 2), runGoOpenAI, "*openai.APIError type=truncated status=0", true, nil},
		// messages: message_start, content_block_start, ping, two deltas.
		{"anthropic-sdk-go_messages", withCut(anthropicDialect, 5), runAnthropic, "*anthropic.Error type=truncated status=200", true, anthropicRaw},
	}
	const hint = "the stream stopped before its end"
	for _, s := range sdks {
		t.Run(s.name, func(t *testing.T) {
			for _, sc := range []peerScenario{scCutH1, scCutH2} {
				for _, frame := range []bool{true, false} {
					t.Run(fmt.Sprintf("%s/failure_event=%v", sc, frame), func(t *testing.T) {
						d := s.dialect()
						srv, plain := peerServer(t, d, sc)
						var base http.RoundTripper // DefaultBase over HTTP/1.1
						if sc == scCutH2 {
							base = plain.Transport // the server's certificate, HTTP/2
						}
						hc := middleware.NewClient(middleware.Config{Base: base, Stream: sse.Config{FailureEvent: frame}})
						t.Cleanup(hc.CloseIdleConnections)

						res := s.run(testContext(t), srv.URL, hc)
						var se *streamguard.Error
						reaches := errors.As(res.err, &se)
						t.Logf("%d deltas; %s; reaches *streamguard.Error: %v; %q", res.tokens, errKind(res.err), reaches, errText(res.err))
						if res.err == nil {
							t.Fatalf("the cut stream ended in success after %d deltas", res.tokens)
						}
						if want := tokens(d.events[:d.cutAt]); want != 2 || res.tokens != want {
							t.Errorf("%d deltas delivered, want the 2 whole ones sent (%d)", res.tokens, want)
						}
						if frame {
							if got := errKind(res.err); got != s.frameErr {
								t.Errorf("stopped with %s, pinned %s", got, s.frameErr)
							}
							text := res.err.Error()
							if !strings.Contains(text, "network truncated") || !strings.Contains(text, hint) {
								t.Errorf("error %q lacks %q or the hint %q", text, "network truncated", hint)
							}
							if strings.HasPrefix(s.name, "go-openai") {
								var ae *goopenai.APIError
								var syn *json.SyntaxError
								if !errors.As(res.err, &ae) || errors.As(res.err, &syn) {
									t.Errorf("go-openai returned %T %v, want its *openai.APIError", res.err, res.err)
								}
							}
							// Where the SDK keeps the frame's data, the caller can
							// read the verdict back from it.
							if s.document != nil {
								doc := s.document(res.err)
								back := streamguard.ClassifyEvent(doc)
								if back.Source != streamguard.SourceNetwork || back.Reason != streamguard.ReasonTruncated || !back.Retryable {
									t.Errorf("ClassifyEvent(%q) = %s/%s retryable=%v, want network/truncated retryable", doc, back.Source, back.Reason, back.Retryable)
								}
							}
							// The frame's document is the SDK's error now; the
							// guard's *streamguard.Error is not in its chain.
							if reaches {
								t.Errorf("errors.As reached the *streamguard.Error through the frame: %v", res.err)
							}
							return
						}
						if reaches != s.plainReaches {
							t.Fatalf("errors.As reaches *streamguard.Error: %v, pinned %v: %T %v", reaches, s.plainReaches, res.err, res.err)
						}
						if reaches {
							wantVerdict(t, se, streamguard.SourceNetwork, streamguard.ReasonTruncated)
							if !strings.Contains(res.err.Error(), hint) {
								t.Errorf("error %q lacks the hint %q", res.err.Error(), hint)
							}
						}
					})
				}
			}
		})
	}
}

// errText is err's text with the server's address replaced, or "".
func errText(err error) string {
	if err == nil {
		return ""
	}
	return addrRE.ReplaceAllString(err.Error(), "ADDR")
}
