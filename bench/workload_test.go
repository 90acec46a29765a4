package bench

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
)

// Workload A: 100,000 OpenAI chat-chunk events of about 120 bytes, ending in
// data: [DONE]. Workload B: 2,000 events of 16 KiB, so that two fill the
// 32 KiB read buffer exactly and the guard never holds a partial event
// back. Workload B6: 2,000 events of 16 KiB + 6 bytes, so that it does, at
// almost every read.
const (
	eventsA = 100_000
	eventsB = 2_000
)

var (
	onceA, onceB, onceB6 sync.Once
	streamA              []byte
	streamB              []byte
	streamB6             []byte
)

// workloadA returns the bytes of workload A, generated once.
func workloadA() []byte {
	onceA.Do(func() {
		var b bytes.Buffer
		for i := range eventsA {
			fmt.Fprintf(&b, "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"tok%06d\"}}]}\n\n", i)
		}
		b.WriteString("data: [DONE]\n\n")
		streamA = b.Bytes()
	})
	return streamA
}

// workloadB returns the bytes of workload B, generated once.
func workloadB() []byte {
	onceB.Do(func() { streamB = bigEvents(16 << 10) })
	return streamB
}

// workloadB6 returns the bytes of workload B6, generated once.
func workloadB6() []byte {
	onceB6.Do(func() { streamB6 = bigEvents(16<<10 + 6) })
	return streamB6
}

// bigEvents returns eventsB events of size bytes each, and data: [DONE].
func bigEvents(size int) []byte {
	var b bytes.Buffer
	pad := strings.Repeat("x", size-len("data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"content\":\"\"}\n\n"))
	for range eventsB {
		fmt.Fprintf(&b, "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"content\":\"%s\"}\n\n", pad)
	}
	b.WriteString("data: [DONE]\n\n")
	return b.Bytes()
}

// sseResponse returns a 200 text/event-stream response over data in memory.
func sseResponse(data []byte) *http.Response {
	return &http.Response{
		StatusCode: 200,
		Header:     http.Header{"Content-Type": {"text/event-stream"}},
		Body:       io.NopCloser(bytes.NewReader(data)),
	}
}

// drain reads r to its end through a 32 KiB buffer, as a relay or an
// io.Copy to a network writer does, and returns the bytes read.
func drain(r io.Reader, buf []byte) (int64, error) {
	var total int64
	for {
		n, err := r.Read(buf)
		total += int64(n)
		if err == io.EOF {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
}

// Workload C: a small non-streaming chat completion, request and answer, as
// an OpenAI-compatible server exchanges them.
var (
	requestC = []byte(`{"model":"m","messages":[{"role":"user","content":"hi"}],"max_tokens":16}`)
	replyC   = []byte(`{"id":"chatcmpl-1","object":"chat.completion","created":1700000000,"model":"m",` +
		`"choices":[{"index":0,"message":{"role":"assistant","content":"hello"},"finish_reason":"stop"}],` +
		`"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}`)
)

// workload is one streamed workload: its bytes and how many events it
// holds, the terminal data: [DONE] included.
type workload struct {
	name   string
	data   []byte
	events int
}

// streamWorkloads returns workloads A, B and B6.
func streamWorkloads() []workload {
	return []workload{
		{"A", workloadA(), eventsA + 1},
		{"B", workloadB(), eventsB + 1},
		{"B6", workloadB6(), eventsB + 1},
	}
}
