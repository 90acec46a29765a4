package sse_test

import (
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/streamguard/streamguard/sse"
)

// BenchmarkGenAIUsage reads 1,000 OpenAI chat chunks through the guard, in
// reads of one event each, with usage on none of them (include_usage: on
// a last chunk of its own) or on every one (vLLM's continuous_usage_stats):
// the GenAI facts must cost no allocation per event either way.
//
//	go test -run '^$' -bench GenAIUsage -benchmem ./sse/
func BenchmarkGenAIUsage(b *testing.B) {
	for _, every := range []bool{false, true} {
		b.Run(fmt.Sprintf("usage-every-chunk=%v", every), func(b *testing.B) {
			chunks := []string{genChatFirst}
			for i := range 1000 {
				c := genChatContent(i)
				if every {
					c = strings.Replace(c, `"usage":null`, fmt.Sprintf(`"usage":{"prompt_tokens":11,"completion_tokens":%d,"total_tokens":%d}`, i+1, i+12), 1)
				}
				chunks = append(chunks, c)
			}
			chunks = append(chunks, genChatFinish, genChatUsage, genDone)
			n := 0
			for _, c := range chunks {
				n += len(c)
			}
			b.SetBytes(int64(n))
			b.ReportAllocs()
			for b.Loop() {
				resp := guarded(sseType, nil, sse.Config{}, chunks...)
				if _, err := io.Copy(io.Discard, resp.Body); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
