package resume_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
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
func redisStore(t *testing.T, c *resp.Client, cfg resume.RedisConfig) *resume.RedisStore {
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

// TestRedisStoreReadBounds: a Read returns the rest of the Append that
// holds its first event, then whole Appends while they keep to 512 events
// and 1 MiB.
func TestRedisStoreReadBounds(t *testing.T) {
	c := redisClient(t)
	s := redisStore(t, c, resume.RedisConfig{})
	ctx := context.Background()
	name := resumetest.Name()
	if err := s.Create(ctx, name, []byte("owner")); err != nil {
		t.Fatal(err)
	}
	// 300 Appends of two small events, then 8 of one event of 300 KiB.
	big := make([]byte, 300<<10)
	for seq := uint64(1); seq <= 608; {
		evs := []resume.Event{resumetest.Event(name, seq), resumetest.Event(name, seq+1)}
		if seq > 600 {
			evs = evs[:1]
			evs[0].Data = append(evs[0].Data, big...)
		}
		if err := s.Append(ctx, name, evs); err != nil {
			t.Fatal(err)
		}
		seq += uint64(len(evs))
	}
	for after, want := range map[uint64]int{0: 512, 1: 511} {
		evs, _, err := s.Read(ctx, name, after)
		if err != nil || len(evs) != want || evs[0].Seq != after+1 {
			t.Fatalf("a Read of small events after %d: %d events, %v; want %d", after, len(evs), err, want)
		}
	}
	evs, _, err := s.Read(ctx, name, 600)
	size := 0
	for _, e := range evs {
		size += len(e.Data)
	}
	if err != nil || len(evs) != 3 || size > 1<<20 {
		t.Fatalf("a Read of 300 KiB events: %d events, %d bytes, %v; want 3, within 1 MiB", len(evs), size, err)
	}
	// One Append of 5 events of 300 KiB, one of 1.5 MiB and a small one:
	// the bounds hold inside it too, and an event past them comes alone.
	huge := make([]byte, 1536<<10)
	var batch []resume.Event
	for seq := uint64(609); seq <= 615; seq++ {
		e := resumetest.Event(name, seq)
		switch {
		case seq <= 613:
			e.Data = append(e.Data, big...)
		case seq == 614:
			e.Data = append(e.Data, huge...)
		}
		batch = append(batch, e)
	}
	if err := s.Append(ctx, name, batch); err != nil {
		t.Fatal(err)
	}
	for after, want := range map[uint64]int{608: 3, 610: 3, 611: 2, 613: 1, 614: 1} {
		evs, _, err := s.Read(ctx, name, after)
		if err != nil || len(evs) != want || evs[0].Seq != after+1 || !bytes.Equal(evs[0].Data, batch[after-608].Data) {
			t.Fatalf("a Read inside one Append after %d: %d events, %v; want %d", after, len(evs), err, want)
		}
	}
}
