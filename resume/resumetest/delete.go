package resumetest

import (
	"errors"
	"testing"

	"github.com/streamguard/streamguard/resume"
)

// testDelete deletes a stream: it then reads as never created (Info,
// Read and Append get ErrNotFound), its name can be created again, and
// deleting it again, or a stream never created, is not an error.
func testDelete(t *testing.T, s resume.Store) {
	name := Name()
	if err := s.Create(ctx(t), name, []byte("o")); err != nil {
		t.Fatal(err)
	}
	if err := s.Append(ctx(t), name, []resume.Event{Event(name, 1), Event(name, 2)}); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx(t), name); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Info(ctx(t), name); !errors.Is(err, resume.ErrNotFound) {
		t.Fatalf("Info of a deleted stream: %v, want ErrNotFound", err)
	}
	if _, _, err := s.Read(ctx(t), name, 0); !errors.Is(err, resume.ErrNotFound) {
		t.Fatalf("Read of a deleted stream: %v, want ErrNotFound", err)
	}
	if err := s.Append(ctx(t), name, []resume.Event{Event(name, 3)}); !errors.Is(err, resume.ErrNotFound) {
		t.Fatalf("Append to a deleted stream: %v, want ErrNotFound", err)
	}
	if err := errors.Join(s.Delete(ctx(t), name), s.Delete(ctx(t), Name())); err != nil {
		t.Fatalf("Delete of a stream the store does not hold: %v", err)
	}
	if err := s.Create(ctx(t), name, []byte("o")); err != nil {
		t.Fatalf("Create of a deleted stream's name: %v", err)
	}
	if err := s.Append(ctx(t), name, []resume.Event{Event(name, 1)}); err != nil {
		t.Fatalf("the name created again starts from 1: %v", err)
	}
}

// DeleteFrees checks that a deleted stream no longer counts against a
// store's limits: s must hold one stream at most, and be empty.
func DeleteFrees(t *testing.T, s resume.Store) {
	t.Helper()
	a, b := Name(), Name()
	if err := s.Create(ctx(t), a, []byte("o")); err != nil {
		t.Fatal(err)
	}
	if err := s.Create(ctx(t), b, []byte("o")); !errors.Is(err, resume.ErrFull) {
		t.Fatalf("a second stream in a store of one: %v, want ErrFull", err)
	}
	if err := s.Delete(ctx(t), a); err != nil {
		t.Fatal(err)
	}
	if err := s.Create(ctx(t), b, []byte("o")); err != nil {
		t.Fatalf("a stream after the one held was deleted: %v", err)
	}
}
