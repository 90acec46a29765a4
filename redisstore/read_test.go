package redisstore

import (
	"bytes"
	"errors"
	"testing"

	"github.com/streamguard/streamguard/resume"
	"github.com/streamguard/streamguard/resume/resumetest"
)

func TestAppendAfterEnd(t *testing.T) {
	s := newStore(t, newClient(t), Config{})
	name := resumetest.Name()
	if err := s.Create(tctx(t), name, []byte("o")); err != nil {
		t.Fatal(err)
	}
	if err := s.Append(tctx(t), name, events(name, 1, 2)); err != nil {
		t.Fatal(err)
	}
	for range 2 { // End is idempotent
		if err := s.End(tctx(t), name); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Append(tctx(t), name, events(name, 3, 3)); !errors.Is(err, resume.ErrSequence) {
		t.Fatalf("Append after End: %v, want ErrSequence", err)
	}
	if err := s.Append(tctx(t), name, []resume.Event{resumetest.Event(name, 3), resumetest.Event(name, 5)}); !errors.Is(err, resume.ErrSequence) {
		t.Fatalf("a gap within an Append: %v, want ErrSequence", err)
	}
	if evs, ended, err := s.Read(tctx(t), name, 2); err != nil || len(evs) != 0 || !ended {
		t.Fatalf("Read at the end: %d events, %v, %v", len(evs), ended, err)
	}
	if evs, ended, err := s.Read(tctx(t), name, 1); err != nil || len(evs) != 1 || !ended {
		t.Fatalf("Read of the last event: %d events, %v, %v", len(evs), ended, err)
	}
}

// Batches: an Append larger than a script's batch, Reads bounded by count
// and by bytes.
func TestBatches(t *testing.T) {
	s := newStore(t, newClient(t), Config{})
	name := resumetest.Name()
	if err := s.Create(tctx(t), name, []byte("o")); err != nil {
		t.Fatal(err)
	}
	if err := s.Append(tctx(t), name, events(name, 1, 1300)); err != nil {
		t.Fatal(err)
	}
	big := bytes.Repeat([]byte("x"), 600<<10)
	if err := s.Append(tctx(t), name, []resume.Event{{Seq: 1301, Data: big}, {Seq: 1302, Data: big}, {Seq: 1303, Data: []byte{}}}); err != nil {
		t.Fatal(err)
	}
	evs, _, err := s.Read(tctx(t), name, 0)
	if err != nil || len(evs) != 512 { // one Read returns at most 512 events
		t.Fatalf("a Read of 1,303 events: %d, %v", len(evs), err)
	}
	if evs, _, err := s.Read(tctx(t), name, 1300); err != nil || len(evs) != 1 || !bytes.Equal(evs[0].Data, big) {
		t.Fatalf("a Read of two 600 KiB events: %d, %v", len(evs), err)
	}
	if evs, _, err := s.Read(tctx(t), name, 1301); err != nil || len(evs) != 2 || len(evs[1].Data) != 0 {
		t.Fatalf("a Read of a 600 KiB and an empty event: %d, %v", len(evs), err)
	}
	if err := s.End(tctx(t), name); err != nil {
		t.Fatal(err)
	}
	all := resumetest.ReadAll(t, s, name, 0)
	for i, e := range all[:1300] {
		if want := resumetest.Event(name, uint64(i)+1); e.Seq != want.Seq || !bytes.Equal(e.Data, want.Data) {
			t.Fatalf("event %d is %d %q", i, e.Seq, e.Data)
		}
	}
	if len(all) != 1303 {
		t.Fatalf("read %d events, want 1303", len(all))
	}
}

func TestBadNames(t *testing.T) {
	s := newStore(t, newClient(t), Config{})
	long := string(bytes.Repeat([]byte("a"), MaxNameLen+1))
	for _, name := range []string{"", long} {
		if err := s.Create(tctx(t), name, []byte("o")); err == nil {
			t.Fatalf("Create of a %d-byte name succeeded", len(name))
		}
		if _, err := s.Info(tctx(t), name); !errors.Is(err, resume.ErrNotFound) {
			t.Fatalf("Info: %v", err)
		}
		if _, _, err := s.Read(tctx(t), name, 0); !errors.Is(err, resume.ErrNotFound) {
			t.Fatalf("Read: %v", err)
		}
	}
	if err := s.Create(tctx(t), resumetest.Name(), make([]byte, MaxOwnerLen+1)); err == nil {
		t.Fatal("Create with a long owner succeeded")
	}
}
