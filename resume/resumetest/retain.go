package resumetest

import (
	"bytes"
	"testing"

	"github.com/streamguard/streamguard/resume"
)

// testNoRetain checks that a store keeps copies of what Append gives it:
// the events' Data are the caller's again once Append returns (the server
// frames the next events into the same buffer), and the events read back
// are what was appended, whatever the caller did with its bytes since.
func testNoRetain(t *testing.T, s resume.Store) {
	name := Name()
	if err := s.Create(ctx(t), name, []byte("owner")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 0, 256)
	var want []resume.Event
	for seq := uint64(1); seq <= 6; seq += 2 {
		// Two events in one buffer, as the server frames a batch.
		a, b := Event(name, seq), Event(name, seq+1)
		buf = append(append(buf[:0], a.Data...), b.Data...)
		batch := []resume.Event{{Seq: seq, Data: buf[:len(a.Data):len(a.Data)]}, {Seq: seq + 1, Data: buf[len(a.Data):]}}
		if err := s.Append(ctx(t), name, batch); err != nil {
			t.Fatal(err)
		}
		for i := range buf {
			buf[i] = 'X' // the caller's bytes are its own again
		}
		batch[0].Seq, batch[0].Data = 99, nil
		want = append(want, a, b)
	}
	if err := s.End(ctx(t), name); err != nil {
		t.Fatal(err)
	}
	got := ReadAll(t, s, name, 0)
	if len(got) != len(want) {
		t.Fatalf("read %d events, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i].Seq != want[i].Seq || !bytes.Equal(got[i].Data, want[i].Data) {
			t.Fatalf("event %d read back as %d %q, want %d %q: the store kept the caller's bytes", i, got[i].Seq, got[i].Data, want[i].Seq, want[i].Data)
		}
	}
}
