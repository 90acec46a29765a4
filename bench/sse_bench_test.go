package bench

import (
	"testing"

	"github.com/streamguard/streamguard/sse"
)

// BenchmarkStreamMemory compares reading workloads A and B from memory raw
// (the floor) and through the guard. Run:
//
//	go test -run '^$' -bench StreamMemory -benchmem -count 6
func BenchmarkStreamMemory(b *testing.B) {
	for _, w := range []struct {
		name   string
		data   func() []byte
		events int
	}{{"A", workloadA, eventsA + 1}, {"B", workloadB, eventsB + 1}, {"B6", workloadB6, eventsB + 1}} {
		data := w.data()
		buf := make([]byte, 32<<10)
		b.Run(w.name+"/raw", func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := drain(sseResponse(data).Body, buf); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(w.name+"/guard", func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			for b.Loop() {
				resp := sseResponse(data)
				sse.Guard(resp, sse.Config{})
				if n, err := drain(resp.Body, buf); err != nil || n != int64(len(data)) {
					b.Fatal(n, err)
				}
			}
			b.ReportMetric(float64(testing.AllocsPerRun(1, func() {
				resp := sseResponse(data)
				sse.Guard(resp, sse.Config{})
				drain(resp.Body, buf)
			}))/float64(w.events), "allocs/event")
		})
	}
}
