package integration

import (
	"context"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/anthropics/anthropic-sdk-go/v2"
	aoption "github.com/anthropics/anthropic-sdk-go/v2/option"
	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/responses"
	"github.com/streamguard/streamguard/gatewaytest"
	"github.com/streamguard/streamguard/middleware"
	"github.com/streamguard/streamguard/tracing"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	semconvgenai "go.opentelemetry.io/otel/semconv/v1.41.0"
	"go.opentelemetry.io/otel/semconv/v1.41.0/genaiconv"
)

// genaiChunks is how many text chunks the GenAI models stream.
const genaiChunks = 6

// genaiStack is the client stack with the real OpenTelemetry SDK behind its
// tracing layer: a span recorder and a manual metric reader.
type genaiStack struct {
	hc     *http.Client
	spans  *tracetest.SpanRecorder
	reader *sdkmetric.ManualReader
}

func newGenAIStack(t *testing.T) *genaiStack {
	t.Helper()
	s := &genaiStack{spans: tracetest.NewSpanRecorder(), reader: sdkmetric.NewManualReader()}
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(s.spans))
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(s.reader))
	t.Cleanup(func() {
		tp.Shutdown(context.Background())
		mp.Shutdown(context.Background())
	})
	s.hc = middleware.NewClient(middleware.Config{Tracing: tracing.Config{TracerProvider: tp, MeterProvider: mp}})
	t.Cleanup(s.hc.CloseIdleConnections)
	return s
}

// span returns the one span that ended.
func (s *genaiStack) span(t *testing.T) sdktrace.ReadOnlySpan {
	t.Helper()
	ended := s.spans.Ended()
	if len(ended) != 1 {
		t.Fatalf("%d spans ended, want 1", len(ended))
	}
	return ended[0]
}

// check checks the GenAI attributes of the call's span and its metrics.
func (s *genaiStack) check(t *testing.T, provider attribute.KeyValue, id, finish, model string) {
	t.Helper()
	sp := s.span(t)
	got := map[attribute.Key]attribute.Value{}
	for _, kv := range sp.Attributes() {
		got[kv.Key] = kv.Value
	}
	want := []attribute.KeyValue{
		semconvgenai.GenAIOperationNameChat, provider,
		semconvgenai.GenAIResponseID(id), semconvgenai.GenAIResponseModel(gatewaytest.GenAIModel),
		semconvgenai.GenAIUsageInputTokens(gatewaytest.GenAIInputTokens),
		semconvgenai.GenAIUsageOutputTokens(gatewaytest.GenAIOutputTokens),
	}
	if model != "" {
		want = append(want, semconvgenai.GenAIRequestModel(model))
	}
	for _, kv := range want {
		if v, ok := got[kv.Key]; !ok || v != kv.Value {
			t.Errorf("span: %s = %s (present %v), want %s", kv.Key, v.String(), ok, kv.Value.String())
		}
	}
	if v := got[semconvgenai.GenAIResponseFinishReasonsKey].AsStringSlice(); !slices.Equal(v, []string{finish}) {
		t.Errorf("span: %s = %q, want [%s]", semconvgenai.GenAIResponseFinishReasonsKey, v, finish)
	}
	if v, ok := got[semconvgenai.GenAIResponseTimeToFirstChunkKey]; !ok || v.AsFloat64() <= 0 {
		t.Errorf("span: %s = %s (present %v)", semconvgenai.GenAIResponseTimeToFirstChunkKey, v.String(), ok)
	}
	s.checkMetrics(t, provider)
}

// checkMetrics checks that each GenAI instrument recorded the call once
// (token usage once by type) with the operation and provider.
func (s *genaiStack) checkMetrics(t *testing.T, provider attribute.KeyValue) {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := s.reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	points := map[string][]attribute.Set{}
	tokens := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, md := range sm.Metrics {
			switch data := md.Data.(type) {
			case metricdata.Histogram[float64]:
				for _, dp := range data.DataPoints {
					points[md.Name] = append(points[md.Name], dp.Attributes)
				}
			case metricdata.Histogram[int64]:
				for _, dp := range data.DataPoints {
					points[md.Name] = append(points[md.Name], dp.Attributes)
					tt, _ := dp.Attributes.Value(semconvgenai.GenAITokenTypeKey)
					tokens[tt.AsString()] += dp.Sum
				}
			}
		}
	}
	for name, n := range map[string]int{
		genaiconv.ClientOperationDuration{}.Name():           1,
		genaiconv.ClientTokenUsage{}.Name():                  2,
		genaiconv.ClientOperationTimeToFirstChunk{}.Name():   1,
		genaiconv.ClientOperationTimePerOutputChunk{}.Name(): 1,
	} {
		if len(points[name]) != n {
			t.Errorf("%s: %d points, want %d", name, len(points[name]), n)
		}
		for _, set := range points[name] {
			for _, kv := range []attribute.KeyValue{semconvgenai.GenAIOperationNameChat, provider} {
				if v, _ := set.Value(kv.Key); v != kv.Value {
					t.Errorf("%s: %s = %s, want %s", name, kv.Key, v.String(), kv.Value.String())
				}
			}
		}
	}
	in, out := semconvgenai.GenAITokenTypeInput.Value.AsString(), semconvgenai.GenAITokenTypeOutput.Value.AsString()
	if tokens[in] != gatewaytest.GenAIInputTokens || tokens[out] != gatewaytest.GenAIOutputTokens {
		t.Errorf("%s: %v", genaiconv.ClientTokenUsage{}.Name(), tokens)
	}
}

// TestGenAIOpenAIChat: openai-go's streaming chat completion with
// include_usage, through the stack.
func TestGenAIOpenAIChat(t *testing.T) {
	srv := gatewaytest.NewServer(gatewaytest.ChatStreamWithUsage(genaiChunks))
	defer srv.Close()
	s := newGenAIStack(t)
	client := openai.NewClient(option.WithBaseURL(srv.URL+"/v1/"), option.WithHTTPClient(s.hc),
		option.WithAPIKey("sk-test-key"), option.WithMaxRetries(0))
	stream := client.Chat.Completions.NewStreaming(testContext(t), openai.ChatCompletionNewParams{
		Model:         "m-req",
		Messages:      []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")},
		StreamOptions: openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)},
	})
	var acc openai.ChatCompletionAccumulator
	for stream.Next() {
		acc.AddChunk(stream.Current())
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	stream.Close()
	if acc.Usage.PromptTokens != gatewaytest.GenAIInputTokens {
		t.Fatalf("openai-go read usage %+v", acc.Usage)
	}
	s.check(t, semconvgenai.GenAIProviderNameOpenAI, gatewaytest.GenAIChatID, gatewaytest.GenAIChatFinish, "m-req")
}

// TestGenAIOpenAIResponses: openai-go's streaming Responses call.
func TestGenAIOpenAIResponses(t *testing.T) {
	srv := gatewaytest.NewServer(gatewaytest.ResponsesStreamWithUsage(genaiChunks))
	defer srv.Close()
	s := newGenAIStack(t)
	client := openai.NewClient(option.WithBaseURL(srv.URL+"/v1/"), option.WithHTTPClient(s.hc),
		option.WithAPIKey("sk-test-key"), option.WithMaxRetries(0))
	stream := client.Responses.NewStreaming(testContext(t), responses.ResponseNewParams{
		Model: "m-req",
		Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("hi")},
	})
	for stream.Next() {
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	stream.Close()
	s.check(t, semconvgenai.GenAIProviderNameOpenAI, gatewaytest.GenAIResponsesID, "completed", "m-req")
}

// TestGenAIAnthropic: anthropic-sdk-go's streaming Messages call.
func TestGenAIAnthropic(t *testing.T) {
	srv := gatewaytest.NewServer(gatewaytest.AnthropicStreamWithUsage(genaiChunks))
	defer srv.Close()
	s := newGenAIStack(t)
	client := anthropic.NewClient(aoption.WithoutEnvironmentDefaults(), aoption.WithBaseURL(srv.URL+"/"),
		aoption.WithHTTPClient(s.hc), aoption.WithAPIKey("sk-ant-test-key"), aoption.WithMaxRetries(0))
	stream := client.Messages.NewStreaming(testContext(t), anthropic.MessageNewParams{
		Model:     anthropic.Model("claude-req"),
		MaxTokens: 64,
		Messages:  []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("hi"))},
	})
	for stream.Next() {
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	stream.Close()
	s.check(t, semconvgenai.GenAIProviderNameAnthropic, gatewaytest.GenAIAnthropicID, gatewaytest.GenAIAnthropicStop, "claude-req")
}

// TestGenAIRawReader: the same attributes for a caller that reads the chat
// stream's bytes itself, and none for a stream of no known dialect.
func TestGenAIRawReader(t *testing.T) {
	for _, tc := range []struct {
		name  string
		h     http.Handler
		genai bool
	}{
		{"openai chat", gatewaytest.ChatStreamWithUsage(genaiChunks), true},
		{"anthropic", gatewaytest.AnthropicStreamWithUsage(genaiChunks), true},
		{"no dialect", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/event-stream")
			io.WriteString(w, "data: hello\n\n")
		}), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := gatewaytest.NewServer(tc.h)
			defer srv.Close()
			s := newGenAIStack(t)
			resp, err := s.hc.Post(srv.URL+"/v1/chat/completions", "application/json",
				strings.NewReader(`{"model":"m-raw","stream":true,"messages":[]}`))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := io.Copy(io.Discard, resp.Body); err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			switch {
			case !tc.genai:
				for _, kv := range s.span(t).Attributes() {
					if strings.HasPrefix(string(kv.Key), "gen_ai.") {
						t.Errorf("a stream of no dialect has %s", kv.Key)
					}
				}
			case tc.name == "anthropic":
				s.check(t, semconvgenai.GenAIProviderNameAnthropic, gatewaytest.GenAIAnthropicID, gatewaytest.GenAIAnthropicStop, "m-raw")
			default:
				s.check(t, semconvgenai.GenAIProviderNameOpenAI, gatewaytest.GenAIChatID, gatewaytest.GenAIChatFinish, "m-raw")
			}
		})
	}
}
