package resumetest

import (
	"errors"
	"testing"
	"time"

	"github.com/streamguard/streamguard/resume"
)

// testVisit checks Visit: it moves Seen as a Read does, changes nothing
// else, works on an ended stream, and gets ErrNotFound for a stream the
// store does not hold.
func testVisit(t *testing.T, s resume.Store) {
	name := Name()
	if err := s.Visit(ctx(t), name); !errors.Is(err, resume.ErrNotFound) {
		t.Fatalf("Visit of an unknown stream: %v, want ErrNotFound", err)
	}
	if err := s.Create(ctx(t), name, []byte("owner")); err != nil {
		t.Fatal(err)
	}
	if err := s.Append(ctx(t), name, []resume.Event{Event(name, 1)}); err != nil {
		t.Fatal(err)
	}
	info := func() resume.Info {
		t.Helper()
		i, err := s.Info(ctx(t), name)
		if err != nil {
			t.Fatal(err)
		}
		return i
	}
	// The store may keep its own clock (Redis's) to the millisecond.
	const slack = 25 * time.Millisecond
	before := info()
	time.Sleep(4 * slack)
	if err := s.Visit(ctx(t), name); err != nil {
		t.Fatalf("Visit: %v", err)
	}
	after := info()
	if after.Seen.Sub(before.Seen) < 3*slack {
		t.Fatalf("a Visit %v after the last sign of a reader left Seen at %v (was %v)", 4*slack, after.Seen, before.Seen)
	}
	if after.Written.Sub(before.Written).Abs() > slack || after.Last != 1 || after.Ended {
		t.Fatalf("a Visit changed the stream: %+v, was %+v", after, before)
	}
	if err := s.End(ctx(t), name); err != nil {
		t.Fatal(err)
	}
	if err := s.Visit(ctx(t), name); err != nil {
		t.Fatalf("Visit of an ended stream: %v", err)
	}
	if evs, ended, err := s.Read(ctx(t), name, 0); err != nil || len(evs) != 1 || !ended {
		t.Fatalf("Read after the visits: %d events, ended %v, %v", len(evs), ended, err)
	}
	if err := s.Delete(ctx(t), name); err != nil {
		t.Fatal(err)
	}
	if err := s.Visit(ctx(t), name); !errors.Is(err, resume.ErrNotFound) {
		t.Fatalf("Visit of a deleted stream: %v, want ErrNotFound", err)
	}
}
