package redisstore

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/streamguard/streamguard/resume"
	"github.com/streamguard/streamguard/resume/resumetest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// newClient returns a client of the Redis at $STREAMGUARD_REDIS_ADDR. The
// test skips when that is unset, and fails when $CI is set too.
func newClient(tb testing.TB) *redis.Client {
	tb.Helper()
	addr := resumetest.RedisAddr(tb)
	c := redis.NewClient(&redis.Options{Addr: addr})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		c.Close()
		tb.Fatalf("redis at %s: %v", addr, err)
	}
	tb.Cleanup(func() { c.Close() })
	return c
}

// freshPrefix returns a key prefix no other test uses, and deletes its
// keys when tb ends (on every master of a cluster).
func freshPrefix(tb testing.TB, c redis.UniversalClient) string {
	var b [8]byte
	rand.Read(b[:])
	prefix := "sgtest-" + hex.EncodeToString(b[:]) + ":"
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		clean := func(ctx context.Context, n *redis.Client) error {
			var cursor uint64
			for range 10_000 {
				keys, next, err := n.Scan(ctx, cursor, prefix+"*", 1000).Result()
				if err != nil {
					return err
				}
				pipe := n.Pipeline() // a key at a time: a cluster's keys are in many slots
				for _, k := range keys {
					pipe.Unlink(ctx, k)
				}
				if _, err := pipe.Exec(ctx); err != nil && len(keys) > 0 {
					return err
				}
				if cursor = next; cursor == 0 {
					return nil
				}
			}
			return nil
		}
		var err error
		switch c := c.(type) {
		case *redis.ClusterClient:
			err = c.ForEachMaster(ctx, clean)
		case *redis.Client:
			err = clean(ctx, c)
		}
		if err != nil {
			tb.Logf("cleaning %s: %v", prefix, err)
		}
	})
	return prefix
}

// newStore returns a store on a fresh prefix; cfg.Prefix is set.
func newStore(tb testing.TB, c redis.UniversalClient, cfg Config) *Store {
	tb.Helper()
	if cfg.Prefix == "" {
		cfg.Prefix = freshPrefix(tb, c)
	}
	s := New(c, cfg)
	tb.Cleanup(func() { s.Close() })
	return s
}

func tctx(tb testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	tb.Cleanup(cancel)
	return ctx
}

func events(name string, from, to uint64) []resume.Event {
	var evs []resume.Event
	for seq := from; seq <= to; seq++ {
		evs = append(evs, resumetest.Event(name, seq))
	}
	return evs
}

func TestConformance(t *testing.T) {
	c := newClient(t)
	resumetest.Run(t, func(t *testing.T) resume.Store { return newStore(t, c, Config{}) })
}

// TestScriptsFlushed: through go-redis too, the store reloads its scripts
// when Redis has lost them (go-redis's own NOSCRIPT error).
func TestScriptsFlushed(t *testing.T) {
	c := newClient(t)
	resumetest.ScriptsFlushed(t, newStore(t, c, Config{}), func(ctx context.Context) error { return c.ScriptFlush(ctx).Err() })
}

func TestDefaults(t *testing.T) {
	cfg := New(nil, Config{MaxLen: 1 << 62}).Config()
	want := Config{Prefix: DefaultPrefix, MaxLen: MaxMaxLen, MaxStreamBytes: DefaultMaxStreamBytes, TTL: resume.DefaultMaxAge, MaxStreams: resume.DefaultMaxStreams}
	if cfg != want {
		t.Fatalf("Config %+v, want %+v", cfg, want)
	}
}

func TestMaxLen(t *testing.T) {
	s := newStore(t, newClient(t), Config{MaxLen: 10})
	name := resumetest.Name()
	if err := s.Create(tctx(t), name, []byte("o")); err != nil {
		t.Fatal(err)
	}
	if err := s.Append(tctx(t), name, events(name, 1, 8)); err != nil {
		t.Fatal(err)
	}
	if err := s.Append(tctx(t), name, events(name, 9, 11)); !errors.Is(err, resume.ErrFull) {
		t.Fatalf("Append past MaxLen: %v, want ErrFull", err)
	}
	if info, err := s.Info(tctx(t), name); err != nil || info.Last != 8 {
		t.Fatalf("after a refused Append: %+v %v", info, err)
	}
	if err := s.Append(tctx(t), name, events(name, 9, 10)); err != nil {
		t.Fatal(err)
	}
	if err := s.Append(tctx(t), name, events(name, 11, 11)); !errors.Is(err, resume.ErrFull) {
		t.Fatalf("Append past MaxLen: %v, want ErrFull", err)
	}
	if err := s.End(tctx(t), name); err != nil {
		t.Fatal(err)
	}
	if evs := resumetest.ReadAll(t, s, name, 0); len(evs) != 10 || evs[0].Seq != 1 {
		t.Fatalf("read %d events, want all 10", len(evs))
	}
}

func TestMaxStreams(t *testing.T) {
	s := newStore(t, newClient(t), Config{MaxStreams: 3, TTL: 300 * time.Millisecond})
	var names []string
	for range 3 {
		names = append(names, resumetest.Name())
		if err := s.Create(tctx(t), names[len(names)-1], []byte("o")); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Create(tctx(t), resumetest.Name(), []byte("o")); !errors.Is(err, resume.ErrFull) {
		t.Fatalf("a fourth Create: %v, want ErrFull", err)
	}
	// An ended stream makes room, and reads as expired.
	if err := s.End(tctx(t), names[1]); err != nil {
		t.Fatal(err)
	}
	if err := s.Create(tctx(t), resumetest.Name(), []byte("o")); err != nil {
		t.Fatalf("a Create with a stream ended: %v", err)
	}
	if _, _, err := s.Read(tctx(t), names[1], 0); !errors.Is(err, resume.ErrExpired) {
		t.Fatalf("Read of the evicted stream: %v, want ErrExpired", err)
	}
	if _, err := s.Info(tctx(t), names[0]); err != nil {
		t.Fatalf("Info of a stream being written: %v", err)
	}
	if err := s.Create(tctx(t), resumetest.Name(), []byte("o")); !errors.Is(err, resume.ErrFull) {
		t.Fatalf("a Create with none ended: %v, want ErrFull", err)
	}
	// The streams expire, and make room.
	name := resumetest.Name()
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := s.Create(tctx(t), name, []byte("o"))
		if err == nil {
			break
		}
		if !errors.Is(err, resume.ErrFull) || time.Now().After(deadline) {
			t.Fatalf("Create after the others expired: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestExpiry(t *testing.T) {
	const ttl = 200 * time.Millisecond
	s := newStore(t, newClient(t), Config{TTL: ttl})
	idle, read := resumetest.Name(), resumetest.Name()
	for _, name := range []string{idle, read} {
		if err := s.Create(tctx(t), name, []byte("o")); err != nil {
			t.Fatal(err)
		}
		if err := s.Append(tctx(t), name, events(name, 1, 3)); err != nil {
			t.Fatal(err)
		}
	}
	// read is read every 50 ms and outlives idle, which nobody touches.
	start := time.Now()
	for {
		if evs, _, err := s.Read(tctx(t), read, 0); err != nil || len(evs) != 3 {
			t.Fatalf("Read of a stream being read, after %v: %d events, %v", time.Since(start), len(evs), err)
		}
		_, err := s.Info(tctx(t), idle)
		if errors.Is(err, resume.ErrExpired) {
			// The tombstone, renewed by every touch, says whose it was.
			if ex := (*resume.ExpiredError)(nil); !errors.As(err, &ex) || string(ex.Owner) != "o" {
				t.Fatalf("Info of the expired stream: %v, want its owner (%+v)", err, ex)
			}
			break
		}
		if err != nil && !errors.Is(err, resume.ErrExpired) || time.Since(start) > 5*time.Second {
			t.Fatalf("Info of an idle stream after %v: %v, want ErrExpired", time.Since(start), err)
		}
		if time.Since(start) < ttl/2 && err != nil {
			t.Fatalf("Info of an idle stream after %v: %v", time.Since(start), err)
		}
		time.Sleep(ttl / 8)
	}
	if _, _, err := s.Read(tctx(t), idle, 0); !errors.Is(err, resume.ErrExpired) {
		t.Fatalf("Read: %v, want ErrExpired", err)
	}
	if err := s.Append(tctx(t), idle, events(idle, 4, 4)); !errors.Is(err, resume.ErrExpired) {
		t.Fatalf("Append: %v, want ErrExpired", err)
	}
	if err := s.End(tctx(t), idle); !errors.Is(err, resume.ErrExpired) {
		t.Fatalf("End: %v, want ErrExpired", err)
	}
	for time.Since(start) < 3*ttl {
		if evs, _, err := s.Read(tctx(t), read, 0); err != nil || len(evs) != 3 {
			t.Fatalf("Read of a stream being read, after %v: %d events, %v", time.Since(start), len(evs), err)
		}
		time.Sleep(ttl / 8)
	}
	// One more TTL and the tombstone is gone too.
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := s.Info(tctx(t), idle)
		if errors.Is(err, resume.ErrNotFound) {
			break
		}
		if !errors.Is(err, resume.ErrExpired) || time.Now().After(deadline) {
			t.Fatalf("Info long after the TTL: %v, want ErrNotFound", err)
		}
		time.Sleep(ttl / 4)
	}
}

// Two stores on one Redis are two replicas: the same key, and each other's
// streams.
func TestReplicas(t *testing.T) {
	c := newClient(t)
	a := newStore(t, c, Config{})
	b := newStore(t, newClient(t), Config{Prefix: a.Config().Prefix})
	ka, err1 := a.Key(tctx(t))
	kb, err2 := b.Key(tctx(t))
	if err := errors.Join(err1, err2); err != nil || len(ka) != 32 || !bytes.Equal(ka, kb) {
		t.Fatalf("keys %x and %x, %v", ka, kb, err)
	}
	name, owner := resumetest.Name(), []byte("owner-hash")
	if err := a.Create(tctx(t), name, owner); err != nil {
		t.Fatal(err)
	}
	if err := b.Create(tctx(t), name, owner); !errors.Is(err, resume.ErrExists) {
		t.Fatalf("Create of a stream the other replica made: %v, want ErrExists", err)
	}
	if info, err := b.Info(tctx(t), name); err != nil || !bytes.Equal(info.Owner, owner) {
		t.Fatalf("Info from the other replica: %+v %v", info, err)
	}
	if err := a.Append(tctx(t), name, events(name, 1, 5)); err != nil {
		t.Fatal(err)
	}
	got := make(chan []resume.Event, 1)
	go func() { got <- resumetest.ReadAll(t, b, name, 2) }()
	for seq := uint64(6); seq <= 40; seq += 5 {
		time.Sleep(2 * time.Millisecond)
		if err := a.Append(tctx(t), name, events(name, seq, seq+4)); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.End(tctx(t), name); err != nil {
		t.Fatal(err)
	}
	select {
	case evs := <-got:
		if len(evs) != 38 || evs[0].Seq != 3 || evs[37].Seq != 40 {
			t.Fatalf("the other replica read %d events", len(evs))
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the other replica never saw the end")
	}
	if info, err := a.Info(tctx(t), name); err != nil || !info.Ended || info.Last != 40 || time.Since(info.Seen) > 5*time.Second {
		t.Fatalf("Info after the other's reads: %+v %v", info, err)
	}
}

func TestCancelRead(t *testing.T) {
	s := newStore(t, newClient(t), Config{})
	name := resumetest.Name()
	if err := s.Create(tctx(t), name, []byte("o")); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, _, err := s.Read(ctx, name, 0)
		errc <- err
	}()
	time.Sleep(100 * time.Millisecond) // in XREAD BLOCK by now
	cancel()
	start := time.Now()
	select {
	case err := <-errc:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Read: %v, want context.Canceled", err)
		}
		if d := time.Since(start); d > 700*time.Millisecond { // XREAD BLOCK waits 1 s at most
			t.Fatalf("Read returned %v after its context was canceled", d)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Read never returned")
	}
	// Canceled before: at once, and no wait.
	if _, _, err := s.Read(ctx, name, 0); !errors.Is(err, context.Canceled) {
		t.Fatalf("Read with a canceled context: %v", err)
	}
}
