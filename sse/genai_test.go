package sse_test

import (
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/streamguard/streamguard/internal/streamstat"
	"github.com/streamguard/streamguard/sse"
)

const (
	genChatFirst  = `data: {"id":"chatcmpl-9","object":"chat.completion.chunk","created":1,"model":"gpt-x-2025","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}` + "\n\n"
	genChatFinish = `data: {"id":"chatcmpl-9","object":"chat.completion.chunk","created":1,"model":"gpt-x-2025","choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"usage":null}` + "\n\n"
	genChatUsage  = `data: {"id":"chatcmpl-9","object":"chat.completion.chunk","created":1,"model":"gpt-x-2025","choices":[],"usage":{"prompt_tokens":11,"completion_tokens":22,"total_tokens":33}}` + "\n\n"
	genDone       = "data: [DONE]\n\n"
)

func genChatContent(i int) string {
	return fmt.Sprintf(`data: {"id":"chatcmpl-9","object":"chat.completion.chunk","created":1,"model":"gpt-x-2025","choices":[{"index":0,"delta":{"content":"t%d"},"finish_reason":null}],"usage":null}`+"\n\n", i)
}

// genStats reads resp to its end and returns what its guard gathered.
func genStats(t *testing.T, resp *http.Response) *streamstat.GenAI {
	t.Helper()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		t.Fatalf("read: %v", err)
	}
	return resp.Body.(streamstat.Reporter).StreamStats().GenAI
}

// splits returns stream cut into reads every n bytes.
func splits(stream string, n int) []string {
	var out []string
	for len(stream) > n {
		out, stream = append(out, stream[:n]), stream[n:]
	}
	return append(out, stream)
}

func TestGenAIOpenAIChat(t *testing.T) {
	var b strings.Builder
	b.WriteString(genChatFirst)
	for i := range 50 {
		b.WriteString(genChatContent(i))
	}
	b.WriteString(genChatFinish + genChatUsage + genDone)
	stream := b.String()
	// Whole, in one read; one event per read; and reads of every size that
	// cut events anywhere.
	cases := map[string][]string{"one read": {stream}}
	for _, n := range []int{1, 7, 64, 150, 333, 4096} {
		cases[fmt.Sprintf("reads of %d", n)] = splits(stream, n)
	}
	var perEvent []string
	for _, ev := range strings.SplitAfter(stream, "\n\n") {
		if ev != "" {
			perEvent = append(perEvent, ev)
		}
	}
	cases["one event per read"] = perEvent
	for name, chunks := range cases {
		t.Run(name, func(t *testing.T) {
			g := genStats(t, guarded(sseType, nil, sse.Config{}, chunks...))
			if g == nil {
				t.Fatal("no GenAI stats")
			}
			want := streamstat.GenAI{Dialect: "openai", ResponseID: "chatcmpl-9", ResponseModel: "gpt-x-2025",
				FinishReasons: []string{"stop"}, InputTokens: 11, OutputTokens: 22, Chunks: 54}
			if g.FirstChunk.IsZero() || g.LastChunk.Before(g.FirstChunk) {
				t.Errorf("chunk times %v, %v", g.FirstChunk, g.LastChunk)
			}
			g.FirstChunk, g.LastChunk = want.FirstChunk, want.LastChunk
			if !reflect.DeepEqual(*g, want) {
				t.Errorf("got %+v\nwant %+v", *g, want)
			}
		})
	}
}

func TestGenAIOpenAIWithoutUsage(t *testing.T) {
	g := genStats(t, guarded(sseType, nil, sse.Config{}, genChatFirst+genChatContent(0)+genChatFinish+genDone))
	if g == nil || g.InputTokens != -1 || g.OutputTokens != -1 || !reflect.DeepEqual(g.FinishReasons, []string{"stop"}) {
		t.Fatalf("got %+v", g)
	}
}

func TestGenAIAnthropic(t *testing.T) {
	stream := "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_7\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-x\",\"content\":[],\"usage\":{\"input_tokens\":25,\"output_tokens\":1}}}\n\n" +
		"event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n" +
		"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"hi\"}}\n\n" +
		"event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n" +
		"event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"max_tokens\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":15}}\n\n" +
		"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"
	g := genStats(t, guarded(sseType, nil, sse.Config{}, splits(stream, 40)...))
	if g == nil {
		t.Fatal("no GenAI stats")
	}
	if g.Dialect != "anthropic" || g.ResponseID != "msg_7" || g.ResponseModel != "claude-x" || g.InputTokens != 25 ||
		g.OutputTokens != 15 || !reflect.DeepEqual(g.FinishReasons, []string{"max_tokens"}) || g.Chunks != 6 {
		t.Errorf("got %+v", *g)
	}
}

func TestGenAIResponses(t *testing.T) {
	stream := "event: response.created\ndata: {\"type\":\"response.created\",\"response\":{\"id\":\"resp_3\",\"model\":\"gpt-r\",\"status\":\"in_progress\"}}\n\n" +
		"event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"delta\":\"hi\"}\n\n" +
		"event: response.incomplete\ndata: {\"type\":\"response.incomplete\",\"response\":{\"id\":\"resp_3\",\"model\":\"gpt-r\",\"status\":\"incomplete\",\"incomplete_details\":{\"reason\":\"max_output_tokens\"},\"output\":[{\"type\":\"message\",\"content\":[{\"type\":\"output_text\",\"text\":\"hi\"}]}],\"usage\":{\"input_tokens\":5,\"output_tokens\":9,\"total_tokens\":14}}}\n\n"
	g := genStats(t, guarded(sseType, nil, sse.Config{}, stream))
	if g == nil {
		t.Fatal("no GenAI stats")
	}
	if g.Dialect != "responses" || g.ResponseID != "resp_3" || g.ResponseModel != "gpt-r" || g.InputTokens != 5 ||
		g.OutputTokens != 9 || !reflect.DeepEqual(g.FinishReasons, []string{"max_output_tokens"}) || g.Chunks != 3 {
		t.Errorf("got %+v", *g)
	}
}

func TestGenAIOnlyForBuiltinDialects(t *testing.T) {
	raw := "data: hello\n\n" + "data: world\n\n"
	if g := genStats(t, guarded(sseType, nil, sse.Config{}, raw)); g != nil {
		t.Errorf("a raw stream: %+v", *g)
	}
	own := sse.Config{Dialects: sse.DefaultDialects()}
	if g := genStats(t, guarded(sseType, nil, own, genChatFirst+genChatFinish+genDone)); g != nil {
		t.Errorf("dialects of one's own: %+v", *g)
	}
	if g := genStats(t, guarded("application/octet-stream", nil, sse.Config{}, genChatFirst+genDone)); g != nil {
		t.Errorf("not an event stream: %+v", *g)
	}
}

// TestGenAIBounded: a stream cannot grow what the guard keeps.
func TestGenAIBounded(t *testing.T) {
	long := strings.Repeat("r", 1000)
	var b strings.Builder
	b.WriteString(genChatFirst)
	for range 20 {
		b.WriteString(strings.Replace(genChatFinish, `"stop"`, `"`+long+`"`, 1))
	}
	b.WriteString(genDone)
	g := genStats(t, guarded(sseType, nil, sse.Config{}, b.String()))
	if g == nil || len(g.FinishReasons) != streamstat.MaxFinishReasons || len(g.FinishReasons[0]) != streamstat.MaxFieldBytes {
		t.Fatalf("got %d reasons", len(g.FinishReasons))
	}
}

// TestGenAIWorkloadAllocations: gathering costs a few allocations per stream,
// none per event: ten times the events cost no more.
func TestGenAIWorkloadAllocations(t *testing.T) {
	allocs := func(events int) float64 {
		var b strings.Builder
		b.WriteString(genChatFirst)
		for i := range events {
			b.WriteString(genChatContent(i))
		}
		b.WriteString(genChatFinish + genChatUsage + genDone)
		stream := b.String()
		buf := make([]byte, 32<<10)
		return testing.AllocsPerRun(10, func() {
			resp := guarded(sseType, nil, sse.Config{}, stream)
			for {
				if _, err := resp.Body.Read(buf); err != nil {
					break
				}
			}
		})
	}
	short, long := allocs(1000), allocs(10000)
	if long > short+1 {
		t.Errorf("%.0f allocations for 1,000 events, %.0f for 10,000", short, long)
	}
}

// TestGenAIPingKeepalive: an "event: ping" keepalive (sse-starlette's)
// before an OpenAI chat stream does not make it Anthropic's: the stream's
// facts are gathered as OpenAI's.
func TestGenAIPingKeepalive(t *testing.T) {
	ping := "event: ping\ndata: 2024-05-01 10:00:00.000000\n\n"
	g := genStats(t, guarded(sseType, nil, sse.Config{}, ping+genChatFirst+genChatContent(1)+genChatFinish+genChatUsage+genDone))
	if g == nil || g.Dialect != sse.OpenAI.Name || g.ResponseID != "chatcmpl-9" || len(g.FinishReasons) != 1 || g.InputTokens != 11 {
		t.Errorf("GenAI %+v", g)
	}
}

// TestGenAIUsageEveryChunk: a server that sends usage on every chunk
// (vLLM's continuous_usage_stats), counting up, leaves the last counts,
// whatever the reads' sizes; a finish chunk read after them, with older
// usage than a later one, does not bring the older back.
func TestGenAIUsageEveryChunk(t *testing.T) {
	var b strings.Builder
	b.WriteString(genChatFirst)
	for i := 1; i <= 50; i++ {
		b.WriteString(strings.Replace(genChatContent(i), `"usage":null`, fmt.Sprintf(`"usage":{"prompt_tokens":11,"completion_tokens":%d,"total_tokens":%d}`, i, i+11), 1))
	}
	finish := strings.Replace(genChatFinish, `"usage":null`, `"usage":{"prompt_tokens":11,"completion_tokens":50,"total_tokens":61}`, 1)
	last := `data: {"id":"chatcmpl-9","object":"chat.completion.chunk","choices":[],"usage":{"prompt_tokens":11,"completion_tokens":51,"total_tokens":62}}` + "\n\n"
	stream := b.String() + finish + last + genDone
	for _, n := range []int{7, 100, 4096, len(stream)} {
		g := genStats(t, guarded(sseType, nil, sse.Config{}, splits(stream, n)...))
		if g == nil || g.InputTokens != 11 || g.OutputTokens != 51 || !reflect.DeepEqual(g.FinishReasons, []string{"stop"}) {
			t.Errorf("reads of %d bytes: %+v", n, g)
		}
	}
}

// TestGenAIUsageScan: the counts are read from the usage object, not from
// another object's before it, and a count that is not a whole number is
// not read.
func TestGenAIUsageScan(t *testing.T) {
	chunk := func(usage string) string {
		return `data: {"id":"chatcmpl-9","object":"chat.completion.chunk","x":{"prompt_tokens":1},"choices":[{"index":0,"delta":{"content":"usage"}}],"usage":` + usage + "}\n\n"
	}
	for _, tc := range []struct {
		usage   string
		in, out int64
	}{
		{`{"prompt_tokens":4,"completion_tokens":7}`, 4, 7},
		{`{"prompt_tokens":5.7,"completion_tokens":7 }`, -1, 7},
		{`{"prompt_tokens_details":{"cached_tokens":3},"prompt_tokens":8,"completion_tokens":9}`, 8, 9},
		{`{"prompt_tokens":4},"y":{"completion_tokens":99}`, 4, -1},
		{`{"note":"a } in a string","prompt_tokens":4,"completion_tokens":7}`, 4, 7},
	} {
		g := genStats(t, guarded(sseType, nil, sse.Config{}, genChatFirst, chunk(tc.usage), genDone))
		if g == nil || g.InputTokens != tc.in || g.OutputTokens != tc.out {
			t.Errorf("usage %s: %+v", tc.usage, g)
		}
	}
}
