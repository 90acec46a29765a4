package resume_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/streamguard/streamguard/internal/resp"
	"github.com/streamguard/streamguard/resume"
	"github.com/streamguard/streamguard/resume/resumetest"
)

// redisClient returns the relay's own client of the Redis at
// $STREAMGUARD_REDIS_ADDR. The test skips when that is unset, and fails
// when $CI is set too: CI starts a redis-server.
func redisClient(t *testing.T) *resp.Client {
	t.Helper()
	addr := resumetest.RedisAddr(t)
	c, err := resp.New("redis://" + addr + "/0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// redisStore returns a store on a prefix of its own.
func redisStore(t *testing.T, c resume.RedisClient, cfg resume.RedisConfig) *resume.RedisStore {
	t.Helper()
	var b [8]byte
	rand.Read(b[:])
	if cfg.Prefix == "" {
		cfg.Prefix = "sgtest-" + hex.EncodeToString(b[:]) + ":"
	}
	s := resume.NewRedisStore(c, cfg)
	t.Cleanup(func() { s.Close() })
	return s
}

// TestRedisStoreContract runs the store contract through the relay's own
// Redis client (the redisstore module runs it through go-redis).
func TestRedisStoreContract(t *testing.T) {
	c := redisClient(t)
	resumetest.Run(t, func(t *testing.T) resume.Store { return redisStore(t, c, resume.RedisConfig{}) })
}

// TestRedisStoreReplicas: two stores on one Redis share the key and each
// other's streams, and a Read canceled by its context returns at once.
func TestRedisStoreReplicas(t *testing.T) {
	c := redisClient(t)
	a := redisStore(t, c, resume.RedisConfig{})
	b := redisStore(t, c, resume.RedisConfig{Prefix: a.Config().Prefix})
	ctx := context.Background()
	ka, _ := a.Key(ctx)
	kb, err := b.Key(ctx)
	if err != nil || string(ka) != string(kb) {
		t.Fatalf("the replicas' keys differ (%v)", err)
	}
	name := resumetest.Name()
	if err := a.Create(ctx, name, []byte("owner")); err != nil {
		t.Fatal(err)
	}
	got := make(chan int, 1)
	go func() {
		evs, _, _ := b.Read(ctx, name, 0)
		got <- len(evs)
	}()
	time.Sleep(20 * time.Millisecond)
	if err := a.Append(ctx, name, []resume.Event{resumetest.Event(name, 1), resumetest.Event(name, 2)}); err != nil {
		t.Fatal(err)
	}
	select {
	case n := <-got:
		if n == 0 {
			t.Fatal("the other replica read nothing")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the other replica's Read never woke")
	}
	cctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, _, err := b.Read(cctx, name, 2); !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > time.Second {
		t.Fatalf("a Read past its deadline: %v after %v", err, time.Since(start))
	}
}

// TestRedisStoreScriptsFlushed: the store reloads its scripts when Redis
// has lost them.
func TestRedisStoreScriptsFlushed(t *testing.T) {
	c := redisClient(t)
	resumetest.ScriptsFlushed(t, redisStore(t, c, resume.RedisConfig{}), func(ctx context.Context) error {
		_, err := c.Do(ctx, "SCRIPT", "FLUSH")
		return err
	})
}

// TestRedisStoreReadBounds: a Read returns the events of the entry that
// holds its first, then whole entries while they keep to 512 events and
// 1 MiB; an event larger comes alone.
func TestRedisStoreReadBounds(t *testing.T) {
	_, s, ctx, name := newRedisStream(t)
	// 300 Appends of two small events; 8 of one event of 300 KiB; one of
	// 5 events of 300 KiB, one of 1.5 MiB and a small one.
	big, huge := make([]byte, 300<<10), make([]byte, 1536<<10)
	all := []resume.Event{{}} // all[seq]
	for seq := uint64(1); seq <= 615; seq++ {
		e := resumetest.Event(name, seq)
		switch {
		case seq > 600 && seq <= 613:
			e.Data = append(e.Data, big...)
		case seq == 614:
			e.Data = append(e.Data, huge...)
		}
		all = append(all, e)
	}
	for _, batch := range [][2]int{{1, 600}, {601, 608}, {609, 615}} {
		per := map[int]int{1: 2, 601: 1, 609: 7}[batch[0]]
		for seq := batch[0]; seq <= batch[1]; seq += per {
			if err := s.Append(ctx, name, all[seq:seq+per]); err != nil {
				t.Fatal(err)
			}
		}
	}
	for after, want := range map[uint64]int{0: 512, 1: 511, 599: 4, 600: 3, 606: 2, 608: 3, 610: 3, 611: 2, 613: 1, 614: 1} {
		evs, _, err := s.Read(ctx, name, after)
		if err != nil || len(evs) != want {
			t.Fatalf("a Read after %d: %d events, %v; want %d", after, len(evs), err, want)
		}
		for i, e := range evs {
			if w := all[after+uint64(i)+1]; e.Seq != w.Seq || !bytes.Equal(e.Data, w.Data) {
				t.Fatalf("a Read after %d: event %d is %d (%d bytes), want %d (%d bytes)", after, i, e.Seq, len(e.Data), w.Seq, len(w.Data))
			}
		}
	}
}

// TestRedisStoreForeignEntry: an entry the store cannot read (here one in
// another layout) fails the Read at once, instead of a wait that would
// return at once, again and again.
func TestRedisStoreForeignEntry(t *testing.T) {
	c, s, ctx, name := newRedisStream(t)
	if err := s.Append(ctx, name, []resume.Event{resumetest.Event(name, 1), resumetest.Event(name, 2)}); err != nil {
		t.Fatal(err)
	}
	prefix := s.Config().Prefix + "s:{" + name + "}:"
	if _, err := c.Do(ctx, "XADD", prefix+"events", "0-3", "d", "data: x\n"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Do(ctx, "HSET", prefix+"meta", "last", 3); err != nil {
		t.Fatal(err)
	}
	if evs, _, err := s.Read(ctx, name, 1); err != nil || len(evs) != 1 {
		t.Fatalf("a Read before the foreign entry: %d events, %v", len(evs), err)
	}
	_, _, err := s.Read(ctx, name, 2)
	if err == nil || ctx.Err() != nil || !strings.Contains(err.Error(), "none after 2") {
		t.Fatalf("a Read at the foreign entry: %v (context: %v)", err, ctx.Err())
	}
}

// newRedisStream returns the relay's client of the test Redis, a store on
// a prefix of its own, a stream created in it, and a context that ends
// with the test or within 30 seconds.
func newRedisStream(t *testing.T) (*resp.Client, *resume.RedisStore, context.Context, string) {
	t.Helper()
	c := redisClient(t)
	s := redisStore(t, c, resume.RedisConfig{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	name := resumetest.Name()
	if err := s.Create(ctx, name, []byte("owner")); err != nil {
		t.Fatal(err)
	}
	return c, s, ctx, name
}

// TestRedisStoreClocks: a replica whose clock is an hour behind reads a
// stream another replica writes; the writer's Info still says the stream
// was just seen (a linger compares it with the writer's clock), and the
// late replica's says so by its own clock: seen and written are by Redis's.
func TestRedisStoreClocks(t *testing.T) {
	c := redisClient(t)
	a := redisStore(t, c, resume.RedisConfig{})
	late := func() time.Time { return time.Now().Add(-time.Hour) }
	b := redisStore(t, c, resume.RedisConfig{Prefix: a.Config().Prefix})
	resume.SetRedisClock(b, late)
	ctx := context.Background()
	name := resumetest.Name()
	if err := a.Create(ctx, name, []byte("owner")); err != nil {
		t.Fatal(err)
	}
	if err := a.Append(ctx, name, []resume.Event{resumetest.Event(name, 1)}); err != nil {
		t.Fatal(err)
	}
	if evs, _, err := b.Read(ctx, name, 0); err != nil || len(evs) != 1 {
		t.Fatalf("the late replica's read: %d events, %v", len(evs), err)
	}
	for _, r := range []struct {
		who   string
		store *resume.RedisStore
		now   func() time.Time
	}{{"the writer", a, time.Now}, {"the late replica", b, late}} {
		info, err := r.store.Info(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		for what, at := range map[string]time.Time{"seen": info.Seen, "written": info.Written} {
			if d := r.now().Sub(at); d < -5*time.Second || d > 5*time.Second {
				t.Errorf("%s: %s %v ago by its clock, want just now", r.who, what, d)
			}
		}
	}
}

// TestRedisStoreKeyLost: when Redis loses the shared key and a replica
// makes another, a replica that read the old one takes the new one within
// ten seconds, so that resumes across them work again.
func TestRedisStoreKeyLost(t *testing.T) {
	c := redisClient(t)
	a := redisStore(t, c, resume.RedisConfig{})
	var skew atomic.Int64
	resume.SetRedisClock(a, func() time.Time { return time.Now().Add(time.Duration(skew.Load())) })
	ctx := context.Background()
	old, err := a.Key(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Do(ctx, "DEL", a.Config().Prefix+"key"); err != nil {
		t.Fatal(err)
	}
	b := redisStore(t, c, resume.RedisConfig{Prefix: a.Config().Prefix})
	made, err := b.Key(ctx)
	if err != nil || bytes.Equal(made, old) {
		t.Fatalf("the new replica's key: %v, the same as the lost one: %v", err, bytes.Equal(made, old))
	}
	if k, _ := a.Key(ctx); !bytes.Equal(k, old) {
		t.Fatal("the old replica read the key again at once")
	}
	skew.Store(int64(11 * time.Second))
	if k, err := a.Key(ctx); err != nil || !bytes.Equal(k, made) {
		t.Fatalf("11 s later, the old replica still has the lost key (%v)", err)
	}
}

// TestRedisStoreStreamBytes: an Append past MaxStreamBytes is refused
// whole (ErrFull), and the stream keeps what it had.
func TestRedisStoreStreamBytes(t *testing.T) {
	s := redisStore(t, redisClient(t), resume.RedisConfig{MaxStreamBytes: 1000})
	ctx := context.Background()
	name := resumetest.Name()
	if err := s.Create(ctx, name, []byte("owner")); err != nil {
		t.Fatal(err)
	}
	ev := func(seq uint64) resume.Event { return resume.Event{Seq: seq, Data: bytes.Repeat([]byte{'x'}, 100)} }
	for seq := uint64(1); seq <= 9; seq++ {
		if err := s.Append(ctx, name, []resume.Event{ev(seq)}); err != nil {
			t.Fatalf("event %d: %v", seq, err)
		}
	}
	if err := s.Append(ctx, name, []resume.Event{ev(10), ev(11)}); !errors.Is(err, resume.ErrFull) {
		t.Fatalf("1,100 bytes in a stream of 1,000: %v, want ErrFull", err)
	}
	if err := s.Append(ctx, name, []resume.Event{ev(10)}); err != nil {
		t.Fatalf("1,000 bytes in a stream of 1,000: %v", err)
	}
	if info, err := s.Info(ctx, name); err != nil || info.Last != 10 {
		t.Fatalf("Info %+v, %v; want 10 events", info, err)
	}
}
