package resume

import (
	"context"
	"fmt"
	"testing"
)

// TestChunksReused: a store that forgets ended streams to make room for
// new ones reuses their memory.
func TestChunksReused(t *testing.T) {
	m := NewMemoryStore(MemoryConfig{MaxBytes: 1 << 20}) // streams of 7 chunks; an eighth kept aside: 8
	ctx := context.Background()
	ev := make([]byte, 100)
	batch := make([]Event, 10)
	run := func(name string) {
		m.Create(ctx, name, []byte("o"))
		for seq := uint64(1); seq <= 1000; seq += 10 {
			for i := range batch {
				batch[i] = Event{Seq: seq + uint64(i), Data: ev}
			}
			if err := m.Append(ctx, name, batch); err != nil {
				t.Fatal(err)
			}
		}
		m.End(ctx, name)
	}
	for i := range 10 { // fill the store, and more: older streams are forgotten
		run(fmt.Sprint("warm", i))
	}
	allocs := testing.AllocsPerRun(5, func() { run(fmt.Sprint("s", len(m.gone))) })
	t.Logf("%.0f allocations per stream of 100 appends", allocs)
	// Per stream: its name, owner and map entry, its channel, the
	// growth of its batch and chunk slices: nothing per Append (a batch's
	// ends are in its chunk), no chunks.
	if allocs > 20 {
		t.Fatalf("%.0f allocations per stream: the chunks are not reused", allocs)
	}
	if _, n := m.Len(); n > 1<<20 {
		t.Fatalf("%d bytes held over MaxBytes", n)
	}
}
