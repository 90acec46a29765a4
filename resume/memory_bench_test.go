package resume_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/streamguard/streamguard/resume"
)

// BenchmarkMemoryAppend appends streams of workload A's shape (100,000
// events of about 115 bytes, as the resume writer stores them: without
// their id lines, 70 per call as its 8 KiB batches) to the default
// in-memory store, which forgets the oldest ended streams once full: the
// store's cost per byte in steady state.
//
//	cd resume && go test -run '^$' -bench MemoryAppend -benchmem
func BenchmarkMemoryAppend(b *testing.B) {
	const perCall, calls = 70, 1430 // 100,100 events
	ctx := context.Background()
	buf := make([]byte, 0, 32<<10)
	size := 0
	store := resume.NewMemoryStore(resume.MemoryConfig{})
	batch := make([]resume.Event, perCall)
	for j := range batch {
		at := len(buf)
		buf = fmt.Appendf(buf, "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"tok%06d\"}}]}\n", j)
		batch[j].Data = buf[at:len(buf):len(buf)]
		size += len(batch[j].Data)
	}
	b.SetBytes(int64(size * calls))
	stream := func(i int) {
		name := fmt.Sprintf("%032x", i)
		if err := store.Create(ctx, name, nil); err != nil {
			b.Fatal(err)
		}
		for seq := 1; seq <= perCall*calls; seq += perCall {
			for j := range batch {
				batch[j].Seq = uint64(seq + j)
			}
			if err := store.Append(ctx, name, batch); err != nil {
				b.Fatal(err)
			}
		}
		store.End(ctx, name)
	}
	for i := range 20 { // fill the store: steady state
		stream(-1 - i)
	}
	i := 0
	for b.Loop() {
		stream(i)
		i++
	}
}

// BenchmarkMemoryCreateFull creates streams in a default store that holds
// its 10,000 streams, all ended: each Create forgets the least recently
// active one, under the store's lock, which every stream's Append waits
// for.
//
//	cd resume && go test -run '^$' -bench MemoryCreateFull -benchmem
func BenchmarkMemoryCreateFull(b *testing.B) {
	ctx := context.Background()
	store := resume.NewMemoryStore(resume.MemoryConfig{})
	i := 0
	stream := func() {
		name := fmt.Sprintf("%032x", i)
		i++
		if err := store.Create(ctx, name, nil); err != nil {
			b.Fatal(err)
		}
		store.End(ctx, name)
	}
	for range resume.DefaultMaxStreams {
		stream()
	}
	for b.Loop() {
		stream()
	}
}
