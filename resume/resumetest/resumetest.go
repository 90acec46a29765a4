// Package resumetest checks that a resume.Store keeps the contract the
// server side of the resume protocol relies on. A store's tests call Run.
package resumetest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/streamguard/streamguard/resume"
)

// Name returns a fresh stream name: 128 random bits in hex.
func Name() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Event returns event seq of a stream named name, as a server stores it
// (without its id line and blank line), its data naming both.
func Event(name string, seq uint64) resume.Event {
	return resume.Event{Seq: seq, Data: fmt.Appendf(nil, "data: {\"stream\":%q,\"n\":%d}\n", name, seq)}
}

// Run checks the store newStore returns; each subtest gets a store of its
// own. Waits are bounded by a few seconds.
func Run(t *testing.T, newStore func(t *testing.T) resume.Store) {
	t.Run("key is stable", func(t *testing.T) { testKey(t, newStore(t)) })
	t.Run("create, append, read, end", func(t *testing.T) { testLifecycle(t, newStore(t)) })
	t.Run("large appends", func(t *testing.T) { testLargeAppends(t, newStore(t)) })
	t.Run("unknown streams", func(t *testing.T) { testUnknown(t, newStore(t)) })
	t.Run("read waits for the tail", func(t *testing.T) { testTail(t, newStore(t)) })
	t.Run("concurrent readers", func(t *testing.T) { testReaders(t, newStore(t)) })
	t.Run("out of sequence", func(t *testing.T) { testSequence(t, newStore(t)) })
	t.Run("writer's sign of life", func(t *testing.T) { testWritten(t, newStore(t)) })
	t.Run("ended short", func(t *testing.T) { testTruncated(t, newStore(t)) })
	t.Run("delete", func(t *testing.T) { testDelete(t, newStore(t)) })
	t.Run("visit", func(t *testing.T) { testVisit(t, newStore(t)) })
	t.Run("keeps copies of what it is given", func(t *testing.T) { testNoRetain(t, newStore(t)) })
}

func ctx(t testing.TB) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

func testKey(t *testing.T, s resume.Store) {
	k1, err := s.Key(ctx(t))
	if err != nil || len(k1) < 16 {
		t.Fatalf("Key: %d bytes, %v", len(k1), err)
	}
	k2, err := s.Key(ctx(t))
	if err != nil || !bytes.Equal(k1, k2) {
		t.Fatalf("a second Key differs (%v)", err)
	}
}

// RedisAddr returns the host:port of the redis-server that
// $STREAMGUARD_REDIS_ADDR names, for tests of a Redis store. When it is
// unset the test skips, and fails when $CI is set too: CI starts one.
func RedisAddr(tb testing.TB) string {
	tb.Helper()
	return Server(tb, "STREAMGUARD_REDIS_ADDR", "a redis-server's host:port")
}

// Server returns the value of the environment variable name, which says
// where a server the test needs listens (what). When it is unset the test
// skips, and fails when $CI is set too: CI starts the server.
func Server(tb testing.TB, name, what string) string {
	tb.Helper()
	v := os.Getenv(name)
	if v == "" {
		if os.Getenv("CI") != "" {
			tb.Fatalf("%s is required in CI: set it to %s", name, what)
		}
		tb.Skipf("%s is unset: no server to test against", name)
	}
	return v
}

// ReadAll reads a stream from after to its end.
func ReadAll(t testing.TB, s resume.Store, name string, after uint64) []resume.Event {
	t.Helper()
	var all []resume.Event
	for i := 0; i < 10_000; i++ {
		evs, ended, err := s.Read(ctx(t), name, after)
		if err != nil {
			t.Fatalf("Read after %d: %v", after, err)
		}
		all = append(all, evs...)
		if len(evs) > 0 {
			after = evs[len(evs)-1].Seq
		}
		if ended {
			return all
		}
	}
	t.Fatal("Read never reported the end")
	return nil
}

func testLifecycle(t *testing.T, s resume.Store) {
	name, owner := Name(), []byte("owner-hash-0123456789")
	if err := s.Create(ctx(t), name, owner); err != nil {
		t.Fatal(err)
	}
	if err := s.Create(ctx(t), name, owner); !errors.Is(err, resume.ErrExists) {
		t.Fatalf("a second Create: %v, want ErrExists", err)
	}
	const n = 1200
	for seq := uint64(1); seq <= n; seq += 3 {
		if err := s.Append(ctx(t), name, []resume.Event{Event(name, seq), Event(name, seq+1), Event(name, seq+2)}); err != nil {
			t.Fatal(err)
		}
	}
	info, err := s.Info(ctx(t), name)
	if err != nil || !bytes.Equal(info.Owner, owner) || info.Last != n || info.Ended {
		t.Fatalf("Info %+v, %v", info, err)
	}
	if err := s.End(ctx(t), name); err != nil {
		t.Fatal(err)
	}
	for _, after := range []uint64{0, 1, 599, n - 1, n} {
		checkRead(t, s, name, after, n, func(seq uint64) resume.Event { return Event(name, seq) })
	}
	if info, _ := s.Info(ctx(t), name); !info.Ended || info.Last != n {
		t.Fatalf("Info after End: %+v", info)
	}
}

// testLargeAppends appends batches of 1, 1,000 and 7 events, then 8 of
// 300 KiB each, and reads the stream back from before, inside and after
// each batch: a store may split a large Append, or a Read, as it likes.
func testLargeAppends(t *testing.T, s resume.Store) {
	name := Name()
	if err := s.Create(ctx(t), name, []byte("owner")); err != nil {
		t.Fatal(err)
	}
	big := bytes.Repeat([]byte("x"), 300<<10)
	event := func(seq uint64) resume.Event {
		e := Event(name, seq)
		if seq > 1008 {
			e.Data = append(append(e.Data[:len(e.Data):len(e.Data)], "data: "...), big...)
			e.Data = append(e.Data, '\n')
		}
		return e
	}
	var seq uint64
	for _, n := range []int{1, 1000, 7, 8} {
		evs := make([]resume.Event, n)
		for i := range evs {
			seq++
			evs[i] = event(seq)
		}
		if err := s.Append(ctx(t), name, evs); err != nil {
			t.Fatalf("Append of %d: %v", n, err)
		}
	}
	if err := s.End(ctx(t), name); err != nil {
		t.Fatal(err)
	}
	for _, after := range []uint64{0, 1, 2, 511, 512, 513, 700, 1000, 1001, 1004, 1008, 1009, 1015, 1016} {
		checkRead(t, s, name, after, seq, event)
	}
}

// checkRead reads a stream of n events from after to its end, and checks
// that it holds events after+1 to n, as event makes them.
func checkRead(t *testing.T, s resume.Store, name string, after, n uint64, event func(uint64) resume.Event) {
	t.Helper()
	evs := ReadAll(t, s, name, after)
	if len(evs) != int(n-after) {
		t.Fatalf("after %d: %d events, want %d", after, len(evs), n-after)
	}
	for i, e := range evs {
		if want := event(after + uint64(i) + 1); e.Seq != want.Seq || !bytes.Equal(e.Data, want.Data) {
			t.Fatalf("after %d: event %d is %d %.80q", after, i, e.Seq, e.Data)
		}
	}
}

func testUnknown(t *testing.T, s resume.Store) {
	name := Name()
	if _, err := s.Info(ctx(t), name); !errors.Is(err, resume.ErrNotFound) {
		t.Fatalf("Info: %v, want ErrNotFound", err)
	}
	if _, _, err := s.Read(ctx(t), name, 0); !errors.Is(err, resume.ErrNotFound) {
		t.Fatalf("Read: %v, want ErrNotFound", err)
	}
	if err := s.Append(ctx(t), name, []resume.Event{Event(name, 1)}); !errors.Is(err, resume.ErrNotFound) {
		t.Fatalf("Append: %v, want ErrNotFound", err)
	}
}

func testTail(t *testing.T, s resume.Store) {
	name := Name()
	if err := s.Create(ctx(t), name, []byte("o")); err != nil {
		t.Fatal(err)
	}
	// A Read with nothing after it waits until ctx ends.
	short, cancel := context.WithTimeout(ctx(t), 50*time.Millisecond)
	defer cancel()
	if evs, _, err := s.Read(short, name, 0); !errors.Is(err, context.DeadlineExceeded) || len(evs) != 0 {
		t.Fatalf("Read of an empty live stream: %d events, %v", len(evs), err)
	}
	got := make(chan []resume.Event, 1)
	go func() { got <- ReadAll(t, s, name, 0) }()
	for seq := uint64(1); seq <= 20; seq++ {
		time.Sleep(time.Millisecond)
		if err := s.Append(ctx(t), name, []resume.Event{Event(name, seq)}); err != nil {
			t.Error(err)
			return
		}
	}
	if err := s.End(ctx(t), name); err != nil {
		t.Fatal(err)
	}
	select {
	case evs := <-got:
		if len(evs) != 20 {
			t.Fatalf("the tail reader got %d events, want 20", len(evs))
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the tail reader never saw the end")
	}
}

func testReaders(t *testing.T, s resume.Store) {
	name := Name()
	if err := s.Create(ctx(t), name, []byte("o")); err != nil {
		t.Fatal(err)
	}
	const readers, n = 8, 200
	var wg sync.WaitGroup
	counts := make([]int, readers)
	for i := range readers {
		wg.Go(func() { counts[i] = len(ReadAll(t, s, name, uint64(i))) })
	}
	for seq := uint64(1); seq <= n; seq++ {
		if err := s.Append(ctx(t), name, []resume.Event{Event(name, seq)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.End(ctx(t), name); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	for i, c := range counts {
		if c != n-i {
			t.Errorf("reader %d got %d events, want %d", i, c, n-i)
		}
	}
}

func testSequence(t *testing.T, s resume.Store) {
	name := Name()
	if err := s.Create(ctx(t), name, []byte("o")); err != nil {
		t.Fatal(err)
	}
	if err := s.Append(ctx(t), name, []resume.Event{Event(name, 2)}); !errors.Is(err, resume.ErrSequence) {
		t.Fatalf("an event 2 first: %v, want ErrSequence", err)
	}
	if info, err := s.Info(ctx(t), name); err != nil || info.Last != 0 {
		t.Fatalf("after a refused Append: %+v %v", info, err)
	}
}

// ScriptsFlushed checks that a store running server-side scripts (Redis)
// survives the loss of the server's script cache (flush: SCRIPT FLUSH, as
// after a restart or a failover) at any point of a stream: every call
// still works, and the stream reads back whole.
func ScriptsFlushed(t *testing.T, s resume.Store, flush func(context.Context) error) {
	name := Name()
	step := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s after the script cache was flushed: %v", what, err)
		}
		if err := flush(ctx(t)); err != nil {
			t.Fatalf("flushing the script cache: %v", err)
		}
	}
	step("Key", func() error { _, err := s.Key(ctx(t)); return err }())
	step("Create", s.Create(ctx(t), name, []byte("owner")))
	step("Append", s.Append(ctx(t), name, []resume.Event{Event(name, 1), Event(name, 2)}))
	step("Read", func() error { _, _, err := s.Read(ctx(t), name, 0); return err }())
	step("Append", s.Append(ctx(t), name, []resume.Event{Event(name, 3)}))
	step("Info", func() error { _, err := s.Info(ctx(t), name); return err }())
	step("End", s.End(ctx(t), name))
	evs := ReadAll(t, s, name, 0)
	if len(evs) != 3 || evs[2].Seq != 3 || !bytes.Equal(evs[2].Data, Event(name, 3).Data) {
		t.Fatalf("read back %d events", len(evs))
	}
}

// testWritten checks Info.Written: set by Create and by every Append,
// also one of no events (which adds none), and not by a Read.
func testWritten(t *testing.T, s resume.Store) {
	name := Name()
	if err := s.Append(ctx(t), name, nil); !errors.Is(err, resume.ErrNotFound) {
		t.Fatalf("an empty Append to an unknown stream: %v, want ErrNotFound", err)
	}
	if err := s.Create(ctx(t), name, []byte("owner")); err != nil {
		t.Fatal(err)
	}
	written := func() time.Time {
		t.Helper()
		info, err := s.Info(ctx(t), name)
		if err != nil {
			t.Fatal(err)
		}
		return info.Written
	}
	// The store may keep its own clock (Redis's) to the millisecond.
	const slack = 25 * time.Millisecond
	if w := written(); w.IsZero() || time.Since(w) > time.Second || time.Until(w) > slack {
		t.Fatalf("Written %v after Create, at %v", w, time.Now())
	}
	if err := s.Append(ctx(t), name, []resume.Event{Event(name, 1)}); err != nil {
		t.Fatal(err)
	}
	w1 := written()
	time.Sleep(4 * slack)
	if evs, _, err := s.Read(ctx(t), name, 0); err != nil || len(evs) != 1 {
		t.Fatalf("Read: %d events, %v", len(evs), err)
	}
	if w := written(); w.Sub(w1).Abs() > slack {
		t.Fatalf("a Read moved Written from %v to %v", w1, w)
	}
	if err := s.Append(ctx(t), name, nil); err != nil {
		t.Fatalf("an empty Append: %v", err)
	}
	if w := written(); w.Sub(w1) < 3*slack {
		t.Fatalf("an empty Append %v after the last left Written at %v (was %v)", 4*slack, w, w1)
	}
	if info, _ := s.Info(ctx(t), name); info.Last != 1 || info.Ended {
		t.Fatalf("an empty Append changed the stream: %+v", info)
	}
	if err := s.End(ctx(t), name); err != nil {
		t.Fatal(err)
	}
	if err := s.Append(ctx(t), name, nil); err != nil {
		t.Fatalf("an empty Append to an ended stream: %v", err)
	}
	checkRead(t, s, name, 0, 1, func(seq uint64) resume.Event { return Event(name, seq) })
}
