package resume_test

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/streamguard/streamguard/resume"
	"github.com/streamguard/streamguard/resume/resumetest"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestMemoryStoreContract(t *testing.T) {
	resumetest.Run(t, func(*testing.T) resume.Store { return resume.NewMemoryStore(resume.MemoryConfig{}) })
}

// TestMemoryStoreDeleteFrees: a deleted stream frees its place and its
// bytes at once.
func TestMemoryStoreDeleteFrees(t *testing.T) {
	s := resume.NewMemoryStore(resume.MemoryConfig{MaxStreams: 1})
	resumetest.DeleteFrees(t, s)
	name := resumetest.Name()
	s = resume.NewMemoryStore(resume.MemoryConfig{})
	if err := errors.Join(s.Create(context.Background(), name, []byte("o")),
		s.Append(context.Background(), name, []resume.Event{resumetest.Event(name, 1)}),
		s.Delete(context.Background(), name)); err != nil {
		t.Fatal(err)
	}
	if n, bytes := s.Len(); n != 0 || bytes != 0 {
		t.Fatalf("after Delete the store holds %d streams, %d bytes", n, bytes)
	}
}

// clock is a settable clock for the store.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) add(d time.Duration) { c.mu.Lock(); c.now = c.now.Add(d); c.mu.Unlock() }

func TestMemoryStoreLimits(t *testing.T) {
	ctx := context.Background()
	t.Run("streams: live ones are never evicted", func(t *testing.T) {
		s := resume.NewMemoryStore(resume.MemoryConfig{MaxStreams: 2})
		a, b, c := resumetest.Name(), resumetest.Name(), resumetest.Name()
		for _, n := range []string{a, b} {
			if err := s.Create(ctx, n, []byte("o")); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.Create(ctx, c, []byte("o")); !errors.Is(err, resume.ErrFull) {
			t.Fatalf("a third stream: %v, want ErrFull", err)
		}
		if err := s.End(ctx, a); err != nil {
			t.Fatal(err)
		}
		if err := s.Create(ctx, c, []byte("o")); err != nil {
			t.Fatalf("with an ended stream to evict: %v", err)
		}
		var ex *resume.ExpiredError
		if _, err := s.Info(ctx, a); !errors.Is(err, resume.ErrExpired) || !errors.As(err, &ex) || string(ex.Owner) != "o" || err.Error() != resume.ErrExpired.Error() {
			t.Fatalf("the evicted stream: %v, want ErrExpired saying its owner (%+v)", err, ex)
		}
		if _, err := s.Info(ctx, b); err != nil {
			t.Fatalf("the live stream: %v", err)
		}
	})
	t.Run("bytes", func(t *testing.T) {
		// A MaxBytes below one 16 KiB chunk is one chunk: a store that
		// took streams and stored none of their events would be useless.
		s := resume.NewMemoryStore(resume.MemoryConfig{MaxBytes: 1000})
		a := resumetest.Name()
		s.Create(ctx, a, []byte("o"))
		var seq uint64
		var err error
		for err == nil && seq < 100 {
			seq++
			err = s.Append(ctx, a, []resume.Event{{Seq: seq, Data: make([]byte, 1000)}})
		}
		if !errors.Is(err, resume.ErrFull) || seq-1 != 16 {
			t.Fatalf("appending past MaxBytes: %v after %d events of 1,000 bytes, want ErrFull after 16", err, seq-1)
		}
		if info, _ := s.Info(ctx, a); info.Last != seq-1 {
			t.Fatalf("the refused event changed the stream: last %d, want %d", info.Last, seq-1)
		}
		if _, n := s.Len(); n > 16<<10+listBytes {
			t.Fatalf("%d bytes held over 16 KiB and a list of 16 Appends", n)
		}
	})
	t.Run("a refusal forgets nothing", func(t *testing.T) {
		// Streams that forgetting every ended one would not make room
		// for are refused before any is forgotten.
		s := resume.NewMemoryStore(resume.MemoryConfig{MaxBytes: 64<<10 + listBytes, MaxStreams: 3})
		done, live := resumetest.Name(), resumetest.Name()
		for _, n := range []string{done, live} {
			if err := errors.Join(s.Create(ctx, n, []byte("o")), s.Append(ctx, n, []resume.Event{resumetest.Event(n, 1)})); err != nil {
				t.Fatal(err)
			}
		}
		s.End(ctx, done)
		if err := s.Append(ctx, live, []resume.Event{{Seq: 2, Data: make([]byte, 64<<10)}}); !errors.Is(err, resume.ErrFull) {
			t.Fatalf("an event larger than the store: %v, want ErrFull", err)
		}
		if _, err := s.Info(ctx, done); err != nil {
			t.Fatalf("the refused Append forgot the ended stream: %v", err)
		}
		for seq := uint64(2); seq <= 3; seq++ { // the live stream takes 3 chunks, done 1
			if err := s.Append(ctx, live, []resume.Event{{Seq: seq, Data: make([]byte, 16<<10-8)}}); err != nil {
				t.Fatal(err)
			}
		}
		x := resumetest.Name()
		if err := s.Create(ctx, x, []byte("o")); err != nil {
			t.Fatalf("a stream that forgetting the ended one makes room for: %v", err)
		}
		if _, err := s.Info(ctx, done); !errors.Is(err, resume.ErrExpired) {
			t.Fatalf("the ended stream forgotten for it: %v, want ErrExpired", err)
		}
		// Every byte taken by live streams (x's first chunk is its own
		// from its Create on): a new stream is refused, not taken and
		// then refused its events.
		if err := s.Append(ctx, x, []resume.Event{resumetest.Event(x, 1)}); err != nil {
			t.Fatalf("x's first event, in the chunk its Create took: %v", err)
		}
		if err := s.Create(ctx, resumetest.Name(), []byte("o")); !errors.Is(err, resume.ErrFull) {
			t.Fatalf("a stream with every byte taken by live ones: %v, want ErrFull", err)
		}
	})
	t.Run("bytes taken by live streams", func(t *testing.T) {
		s := resume.NewMemoryStore(resume.MemoryConfig{MaxBytes: 1 << 20})
		a, b := resumetest.Name(), resumetest.Name()
		s.Create(ctx, a, []byte("o"))
		big := resume.Event{Data: make([]byte, 8<<10)}
		var err error
		for seq := uint64(1); err == nil && seq < 1000; seq++ {
			big.Seq = seq
			err = s.Append(ctx, a, []resume.Event{big})
		}
		if !errors.Is(err, resume.ErrFull) {
			t.Fatalf("filling the store: %v", err)
		}
		if err := s.Create(ctx, b, []byte("o")); !errors.Is(err, resume.ErrFull) {
			t.Fatalf("a new stream with every byte taken by a live one: %v, want ErrFull", err)
		}
		if err := s.End(ctx, a); err != nil {
			t.Fatal(err)
		}
		if err := s.Create(ctx, b, []byte("o")); err != nil {
			t.Fatalf("a new stream once the full one ended (it may be evicted): %v", err)
		}
	})
	t.Run("age", func(t *testing.T) {
		c := &clock{now: time.Unix(1e9, 0)}
		s := resume.NewMemoryStore(resume.MemoryConfig{MaxAge: time.Minute, Now: c.Now})
		a := resumetest.Name()
		s.Create(ctx, a, []byte("o"))
		c.add(59 * time.Second)
		if _, err := s.Info(ctx, a); err != nil {
			t.Fatal(err)
		}
		c.add(2 * time.Minute)
		if _, _, err := s.Read(ctx, a, 0); !errors.Is(err, resume.ErrExpired) {
			t.Fatalf("after MaxAge: %v, want ErrExpired", err)
		}
		if n, _ := s.Len(); n != 0 {
			t.Fatalf("%d streams held", n)
		}
	})
	t.Run("ended streams go least recently active first", func(t *testing.T) {
		c := &clock{now: time.Unix(1e9, 0)}
		s := resume.NewMemoryStore(resume.MemoryConfig{MaxStreams: 3, MaxAge: time.Hour, Now: c.Now})
		a, b, d := resumetest.Name(), resumetest.Name(), resumetest.Name()
		for _, n := range []string{a, b, d} {
			if err := errors.Join(s.Create(ctx, n, []byte("o")), s.Append(ctx, n, []resume.Event{resumetest.Event(n, 1)})); err != nil {
				t.Fatal(err)
			}
			c.add(time.Second)
		}
		// a ends first, then d; b, written before d, ends last; a is read
		// after that: b is then the least recently active ended stream.
		for _, n := range []string{a, d, b} {
			s.End(ctx, n)
			c.add(time.Second)
		}
		if evs, _, err := s.Read(ctx, a, 0); err != nil || len(evs) != 1 {
			t.Fatal(len(evs), err)
		}
		c.add(time.Second)
		for i, gone := range []string{d, b, a} {
			if err := s.Create(ctx, resumetest.Name(), []byte("o")); err != nil {
				t.Fatal(err)
			}
			if _, err := s.Info(ctx, gone); !errors.Is(err, resume.ErrExpired) {
				t.Fatalf("new stream %d: the stream it was to evict: %v, want ErrExpired", i+1, err)
			}
			if n, _ := s.Len(); n != 3 {
				t.Fatalf("new stream %d: %d streams held", i+1, n)
			}
		}
		// Three live streams: nothing to evict.
		if err := s.Create(ctx, resumetest.Name(), []byte("o")); !errors.Is(err, resume.ErrFull) {
			t.Fatalf("a fourth live stream: %v, want ErrFull", err)
		}
	})
	t.Run("names forgotten", func(t *testing.T) {
		// A name is remembered as expired for as long as MaxStreams names
		// forgotten after it allow, counted from the last time it was
		// forgotten; held again, it is not expired, and deleted, not found.
		c := &clock{now: time.Unix(1e9, 0)}
		s := resume.NewMemoryStore(resume.MemoryConfig{MaxStreams: 2, MaxAge: time.Minute, Now: c.Now})
		a, b := resumetest.Name(), resumetest.Name()
		for _, n := range []string{a, a, b} {
			if err := s.Create(ctx, n, []byte("o")); err != nil {
				t.Fatal(err)
			}
			c.add(2 * time.Minute)
			s.Len()
		}
		if _, err := s.Info(ctx, a); !errors.Is(err, resume.ErrExpired) {
			t.Fatalf("a, forgotten among the last 2 names: %v, want ErrExpired", err)
		}
		if err := errors.Join(s.Create(ctx, a, []byte("o")), s.Delete(ctx, a)); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Info(ctx, a); !errors.Is(err, resume.ErrNotFound) {
			t.Fatalf("a, held again and deleted: %v, want ErrNotFound", err)
		}
	})
	t.Run("age: a write keeps a stream", func(t *testing.T) {
		c := &clock{now: time.Unix(1e9, 0)}
		s := resume.NewMemoryStore(resume.MemoryConfig{MaxAge: time.Minute, Now: c.Now})
		a, b := resumetest.Name(), resumetest.Name()
		s.Create(ctx, a, []byte("o"))
		s.Create(ctx, b, []byte("o"))
		c.add(50 * time.Second)
		if err := s.Append(ctx, a, []resume.Event{resumetest.Event(a, 1)}); err != nil {
			t.Fatal(err)
		}
		c.add(20 * time.Second)
		if n, _ := s.Len(); n != 1 {
			t.Fatalf("%d streams held, want a alone", n)
		}
		if _, err := s.Info(ctx, a); err != nil {
			t.Fatalf("the stream written: %v", err)
		}
	})
	t.Run("a reader of a forgotten stream returns", func(t *testing.T) {
		c := &clock{now: time.Unix(1e9, 0)}
		s := resume.NewMemoryStore(resume.MemoryConfig{MaxStreams: 1, MaxAge: time.Minute, Now: c.Now})
		a := resumetest.Name()
		s.Create(ctx, a, []byte("o"))
		done := make(chan error, 1)
		go func() { _, _, err := s.Read(ctx, a, 0); done <- err }()
		time.Sleep(10 * time.Millisecond)
		c.add(2 * time.Minute)
		if err := s.Create(ctx, resumetest.Name(), []byte("o")); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-done:
			if !errors.Is(err, resume.ErrExpired) {
				t.Fatalf("the reader: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("the reader still waits")
		}
	})
}

// tickClock moves on by step at each reading.
type tickClock struct {
	mu   sync.Mutex
	now  time.Time
	step time.Duration
}

func (c *tickClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := c.now
	c.now = c.now.Add(c.step)
	return t
}

func (c *tickClock) set(now time.Time, step time.Duration) {
	c.mu.Lock()
	c.now, c.step = now, step
	c.mu.Unlock()
}

// TestMemoryStoreAppendAtItsAge: an Append that comes as its stream
// reaches MaxAge, and needs room the store makes by forgetting streams,
// sees the stream at one instant: the store neither forgets the stream it
// is appending to (it lost the events, said nothing, and an hour later
// still held that stream and its bytes, out of reach of its limits) nor
// loses track of the others.
func TestMemoryStoreAppendAtItsAge(t *testing.T) {
	ctx := context.Background()
	t0 := time.Unix(1e9, 0)
	clk := &tickClock{now: t0}
	s := resume.NewMemoryStore(resume.MemoryConfig{MaxBytes: 32<<10 + listBytes, MaxAge: time.Minute, Now: clk.Now})
	event := func(seq uint64, size int) []resume.Event {
		return []resume.Event{{Seq: seq, Data: make([]byte, size)}}
	}
	a, c := resumetest.Name(), resumetest.Name()
	if err := errors.Join(s.Create(ctx, a, nil), s.Append(ctx, a, event(1, 10))); err != nil {
		t.Fatal(err)
	}
	clk.set(t0.Add(30*time.Second), 0)
	if err := errors.Join(s.Create(ctx, c, nil), s.Append(ctx, c, event(1, 10)), s.End(ctx, c)); err != nil {
		t.Fatal(err)
	}
	// a turns a minute old between two readings of the clock.
	clk.set(t0.Add(time.Minute), time.Nanosecond)
	err := s.Append(ctx, a, event(2, 16<<10-10)) // needs a chunk: the store must forget c
	info, ierr := s.Info(ctx, a)
	if err == nil && (ierr != nil || info.Last != 2) {
		t.Fatalf("Append to a at its age succeeded, but a is %+v, %v", info, ierr)
	}
	clk.set(t0.Add(time.Hour), 0)
	if n, bytes := s.Len(); n != 0 || bytes != 0 {
		t.Fatalf("an hour later the store holds %d streams, %d bytes", n, bytes)
	}
}

// listBytes is room for two streams' lists of Appends, at their first size
// (8 Appends of 56 bytes each), or one of 16, which MaxBytes counts.
const listBytes = 2 * 8 * 56

// TestMemoryBatchesCounted: a stream appended one small event at a time
// holds more memory in its list of batches than in its events; MaxBytes
// counts it, so that the store's heap stays near MaxBytes.
func TestMemoryBatchesCounted(t *testing.T) {
	const max = 4 << 20
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	m := resume.NewMemoryStore(resume.MemoryConfig{MaxBytes: max})
	ctx := context.Background()
	if err := m.Create(ctx, "s", nil); err != nil {
		t.Fatal(err)
	}
	n := 0
	for seq := uint64(1); seq <= 10_000_000; seq++ { // ErrFull ends it far sooner
		if err := m.Append(ctx, "s", []resume.Event{{Seq: seq, Data: []byte("data\n")}}); err != nil {
			if !errors.Is(err, resume.ErrFull) {
				t.Fatal(err)
			}
			break
		}
		n++
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	if held := int64(after.HeapAlloc) - int64(before.HeapAlloc); held > max*3/2 {
		t.Errorf("MaxBytes %d, %d events: the heap holds %d more bytes (%.1fx)", max, n, held, float64(held)/max)
	}
	runtime.KeepAlive(m)
}
