package resumetest

import (
	"errors"
	"testing"
	"time"

	"github.com/streamguard/streamguard/resume"
)

// testTruncated ends a stream short (EndTruncated) while a reader waits
// past its last event: that reader, and every Read after the last event
// from then on, gets ErrTruncated; a Read from before gets the events held,
// never reported as ended; Info reports it Ended; the first end counts.
func testTruncated(t *testing.T, s resume.Store) {
	name := Name()
	if err := s.Create(ctx(t), name, []byte("o")); err != nil {
		t.Fatal(err)
	}
	const n = 10
	for seq := uint64(1); seq <= n; seq += 5 {
		evs := make([]resume.Event, 0, 5)
		for i := range uint64(5) {
			evs = append(evs, Event(name, seq+i))
		}
		if err := s.Append(ctx(t), name, evs); err != nil {
			t.Fatal(err)
		}
	}
	waiting := make(chan error, 1)
	go func() {
		evs, ended, err := s.Read(ctx(t), name, n)
		if err == nil {
			err = errors.New("no error")
		}
		if len(evs) > 0 || ended {
			err = errors.Join(err, errors.New("events or an end"))
		}
		waiting <- err
	}()
	time.Sleep(20 * time.Millisecond) // most likely waiting by now; either way it must end
	if err := s.EndTruncated(ctx(t), name); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-waiting:
		if !errors.Is(err, resume.ErrTruncated) {
			t.Fatalf("the reader waiting past the last event got %v, want ErrTruncated", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the reader waiting past the last event never woke")
	}
	for _, after := range []uint64{0, 4, n - 1, n} {
		got, err := readTruncated(t, s, name, after)
		if !errors.Is(err, resume.ErrTruncated) || uint64(len(got)) != n-after {
			t.Fatalf("read after %d: %d events, then %v; want %d, then ErrTruncated", after, len(got), err, n-after)
		}
		for i, e := range got {
			if e.Seq != after+uint64(i)+1 {
				t.Fatalf("read after %d: event %d has seq %d", after, i, e.Seq)
			}
		}
	}
	if info, err := s.Info(ctx(t), name); err != nil || !info.Ended || info.Last != n {
		t.Fatalf("Info of a truncated stream: %+v, %v", info, err)
	}
	if err := s.Append(ctx(t), name, []resume.Event{Event(name, n+1)}); !errors.Is(err, resume.ErrSequence) {
		t.Fatalf("Append after EndTruncated: %v, want ErrSequence", err)
	}
	if err := s.End(ctx(t), name); err != nil {
		t.Fatalf("End after EndTruncated: %v", err)
	}
	if _, _, err := s.Read(ctx(t), name, n); !errors.Is(err, resume.ErrTruncated) {
		t.Fatalf("after End after EndTruncated, a Read past the last event: %v, want ErrTruncated", err)
	}

	// The first end counts: EndTruncated after End leaves a complete stream.
	done := Name()
	if err := s.Create(ctx(t), done, []byte("o")); err != nil {
		t.Fatal(err)
	}
	if err := s.Append(ctx(t), done, []resume.Event{Event(done, 1)}); err != nil {
		t.Fatal(err)
	}
	if err := errors.Join(s.End(ctx(t), done), s.EndTruncated(ctx(t), done)); err != nil {
		t.Fatal(err)
	}
	if evs := ReadAll(t, s, done, 0); len(evs) != 1 {
		t.Fatalf("a stream ended, then truncated: %d events", len(evs))
	}
}

// readTruncated reads a stream from after until a Read fails, and returns
// the events and that error; a Read that reports the end is an error.
func readTruncated(t *testing.T, s resume.Store, name string, after uint64) ([]resume.Event, error) {
	t.Helper()
	var all []resume.Event
	for range 10_000 {
		evs, ended, err := s.Read(ctx(t), name, after)
		if err != nil {
			return all, err
		}
		all = append(all, evs...)
		if len(evs) > 0 {
			after = evs[len(evs)-1].Seq
		}
		if ended {
			return all, errors.New("a read reported the end of a truncated stream")
		}
	}
	t.Fatal("Read of a truncated stream never failed")
	return nil, nil
}
