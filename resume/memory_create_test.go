package resume_test

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/streamguard/streamguard/resume"
	"github.com/streamguard/streamguard/resume/resumetest"
)

// TestMemoryCreateTakesItsChunk: a stream the store takes gets room for its
// first events: Create takes its first chunk, and refuses (ErrFull) once
// live streams hold every byte, instead of taking streams whose first
// Append is then refused.
func TestMemoryCreateTakesItsChunk(t *testing.T) {
	ctx := context.Background()
	m := resume.NewMemoryStore(resume.MemoryConfig{MaxBytes: 40 << 10})
	var taken []string
	for range 4 {
		n := resumetest.Name()
		if err := m.Create(ctx, n, []byte{1}); errors.Is(err, resume.ErrFull) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		taken = append(taken, n)
	}
	if len(taken) != 2 {
		t.Errorf("%d streams taken in 40 KiB, want 2 (a chunk of 16 KiB each)", len(taken))
	}
	for _, n := range taken {
		if err := m.Append(ctx, n, []resume.Event{{Seq: 1, Data: bytes.Repeat([]byte("x"), 100)}}); err != nil {
			t.Errorf("a stream taken, its first event refused: %v", err)
		}
	}
	for _, n := range taken {
		m.Delete(ctx, n)
	}
	if streams, b := m.Len(); streams != 0 || b != 0 {
		t.Errorf("after Delete: %d streams, %d bytes", streams, b)
	}
	// Room for a chunk but not for the list of Appends a first Append
	// takes too: refused at Create.
	m = resume.NewMemoryStore(resume.MemoryConfig{MaxBytes: 2*(16<<10) + 448})
	ev := []resume.Event{{Seq: 1, Data: bytes.Repeat([]byte("x"), 100)}}
	if err := errors.Join(m.Create(ctx, "a", []byte{1}), m.Append(ctx, "a", ev)); err != nil {
		t.Fatal(err)
	}
	if err := m.Create(ctx, "b", []byte{1}); err == nil {
		if err := m.Append(ctx, "b", ev); err != nil {
			t.Errorf("b taken, its first event refused: %v", err)
		}
	}
}

// TestMemoryLargeFirstBatch: a first batch larger than a chunk takes one
// of its own in place of the chunk Create took, so that a store of the
// least size still takes it, and a stream holds no chunk it never uses.
func TestMemoryLargeFirstBatch(t *testing.T) {
	ctx := context.Background()
	m := resume.NewMemoryStore(resume.MemoryConfig{MaxBytes: 1}) // the least: one chunk and a list of Appends
	if err := m.Create(ctx, "s", []byte("o")); err != nil {
		t.Fatal(err)
	}
	if err := m.Append(ctx, "s", []resume.Event{{Seq: 1, Data: bytes.Repeat([]byte("x"), 17000)}}); err != nil {
		t.Fatalf("a first event of 17,000 bytes: %v", err)
	}
	if _, b := m.Len(); b > 17004+1024 {
		t.Errorf("%d bytes held for 17,004 of events", b)
	}
}
