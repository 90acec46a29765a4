package resume_test

import (
	"context"
	"errors"
	"testing"

	"github.com/streamguard/streamguard/internal/redistest"
	"github.com/streamguard/streamguard/internal/resp"
	"github.com/streamguard/streamguard/resume"
	"github.com/streamguard/streamguard/resume/resumetest"
)

// TestRedisStoreDeleteFrees: a deleted stream no longer counts against
// MaxStreams.
func TestRedisStoreDeleteFrees(t *testing.T) {
	resumetest.DeleteFrees(t, redisStore(t, redisClient(t), resume.RedisConfig{MaxStreams: 1}))
}

// TestRedisStoreOutOfMemory: a Redis at its maxmemory (noeviction) refuses
// writes. The store reports that as ErrFull, for a new stream (which the
// server answers 503) and for more events of a stream it holds, and the
// events it holds read back whole. It runs a redis-server of its own.
func TestRedisStoreOutOfMemory(t *testing.T) {
	addr := redistest.Start(t, "--maxmemory", "8mb", "--maxmemory-policy", "noeviction")
	c, err := resp.New("redis://" + addr + "/0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	s := redisStore(t, c, resume.RedisConfig{})
	ctx := context.Background()
	name := resumetest.Name()
	if err := s.Create(ctx, name, []byte("owner")); err != nil {
		t.Fatal(err)
	}
	if err := s.Append(ctx, name, []resume.Event{resumetest.Event(name, 1), resumetest.Event(name, 2)}); err != nil {
		t.Fatal(err)
	}
	// One script may write past maxmemory (Redis checks it at a script's
	// start); every write after it is refused.
	if _, err := c.Do(ctx, "EVAL", "for i = 1, 100000 do redis.call('SET', 'fill:'..i, string.rep('x', 100)) end return 1", 0); err != nil {
		t.Fatal(err)
	}
	if err := s.Create(ctx, resumetest.Name(), []byte("owner")); !errors.Is(err, resume.ErrFull) {
		t.Fatalf("a new stream in a Redis past its maxmemory: %v, want ErrFull", err)
	}
	if err := s.Append(ctx, name, []resume.Event{resumetest.Event(name, 3)}); !errors.Is(err, resume.ErrFull) {
		t.Fatalf("an event of a held stream: %v, want ErrFull", err)
	}
	// What keeps a held stream going, or ends it, still works.
	evs, ended, err := s.Read(ctx, name, 0)
	if err != nil || ended || len(evs) != 2 || evs[1].Seq != 2 {
		t.Fatalf("the held stream reads %d events (ended %v): %v", len(evs), ended, err)
	}
	if err := s.Append(ctx, name, nil); err != nil {
		t.Fatalf("the writer's beat: %v", err)
	}
	if err := s.EndTruncated(ctx, name); err != nil {
		t.Fatalf("EndTruncated: %v", err)
	}
	if _, _, err := s.Read(ctx, name, 2); !errors.Is(err, resume.ErrTruncated) {
		t.Fatalf("a read past the last event of the stream ended short: %v, want ErrTruncated", err)
	}
	if info, err := s.Info(ctx, name); err != nil || !info.Ended || info.Last != 2 {
		t.Fatalf("Info: %+v, %v", info, err)
	}
}
