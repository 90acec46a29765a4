package redisstore

import (
	"bytes"
	"context"
	"fmt"
	"testing"

	"github.com/streamguard/streamguard/resume"
	"github.com/streamguard/streamguard/resume/resumetest"
)

// BenchmarkAppendRead appends 1,000 events of about 120 bytes to a stream,
// in Appends of 16, ends it and reads it back, as a resume would.
func BenchmarkAppendRead(b *testing.B) {
	const n, batch = 1000, 16
	s := newStore(b, newClient(b), Config{MaxStreams: 1 << 30})
	ctx := context.Background()
	pad := bytes.Repeat([]byte("x"), 60)
	evs := make([]resume.Event, n)
	size := 0
	for i := range evs {
		seq := uint64(i) + 1
		evs[i] = resume.Event{Seq: seq, Data: fmt.Appendf(nil, "data: {\"t\":\"%s\"}\nid: %032x.%d\n\n", pad, 0, seq)}
		size += len(evs[i].Data)
	}
	b.SetBytes(int64(size))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		name := resumetest.Name()
		if err := s.Create(ctx, name, []byte("owner")); err != nil {
			b.Fatal(err)
		}
		for i := 0; i < n; i += batch {
			if err := s.Append(ctx, name, evs[i:min(i+batch, n)]); err != nil {
				b.Fatal(err)
			}
		}
		if err := s.End(ctx, name); err != nil {
			b.Fatal(err)
		}
		var after uint64
		for ended := false; !ended; {
			got, end, err := s.Read(ctx, name, after)
			if err != nil {
				b.Fatal(err)
			}
			if len(got) > 0 {
				after = got[len(got)-1].Seq
			}
			ended = end
		}
		if after != n {
			b.Fatalf("read %d events", after)
		}
	}
	b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "events/s")
}
