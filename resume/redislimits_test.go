package resume_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync/atomic"
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
	key, err := s.Key(ctx)
	if err != nil {
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
	// Another replica (or this one, 10 s later) reads the key: it does
	// not try to write it, and resumes the held stream. A store whose
	// key is not there yet cannot make one: ErrFull.
	b := redisStore(t, c, resume.RedisConfig{Prefix: s.Config().Prefix})
	if k, err := b.Key(ctx); err != nil || !bytes.Equal(k, key) {
		t.Fatalf("another replica's Key: %v (the same key: %v)", err, bytes.Equal(k, key))
	}
	if evs, _, err := b.Read(ctx, name, 1); err != nil || len(evs) != 1 {
		t.Fatalf("another replica reads %d events of the held stream: %v", len(evs), err)
	}
	if err := b.Create(ctx, resumetest.Name(), []byte("owner")); !errors.Is(err, resume.ErrFull) {
		t.Fatalf("a new stream at another replica: %v, want ErrFull", err)
	}
	if _, err := redisStore(t, c, resume.RedisConfig{}).Key(ctx); !errors.Is(err, resume.ErrFull) {
		t.Fatalf("a new key: %v, want ErrFull", err)
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

// TestRedisStoreFullKeepsEnded: a Create that evicting every ended stream
// would not make room for (a replica with a smaller MaxStreams than the one
// that made the streams) is refused without evicting any.
func TestRedisStoreFullKeepsEnded(t *testing.T) {
	c := redisClient(t)
	big := redisStore(t, c, resume.RedisConfig{MaxStreams: 3})
	small := redisStore(t, c, resume.RedisConfig{MaxStreams: 2, Prefix: big.Config().Prefix})
	ctx := context.Background()
	done := resumetest.Name()
	for _, n := range []string{resumetest.Name(), resumetest.Name(), done} {
		if err := big.Create(ctx, n, []byte("owner\r\n\x00\xff")); err != nil {
			t.Fatal(err)
		}
	}
	if err := big.End(ctx, done); err != nil {
		t.Fatal(err)
	}
	if err := small.Create(ctx, resumetest.Name(), []byte("o")); !errors.Is(err, resume.ErrFull) {
		t.Fatalf("two live streams in a store of two: %v, want ErrFull", err)
	}
	if _, err := big.Info(ctx, done); err != nil {
		t.Fatalf("the refused Create evicted the ended stream: %v", err)
	}
	if err := big.Create(ctx, resumetest.Name(), []byte("o")); err != nil {
		t.Fatalf("a Create that evicting the ended stream makes room for: %v", err)
	}
	var ex *resume.ExpiredError
	if _, err := big.Info(ctx, done); !errors.Is(err, resume.ErrExpired) || !errors.As(err, &ex) || string(ex.Owner) != "owner\r\n\x00\xff" || strings.Contains(err.Error(), "ff") {
		t.Fatalf("the ended stream evicted for it: %v, want ErrExpired saying its owner (%+v)", err, ex)
	}
}

// TestRedisStoreCreateUndone: a Create whose second step (the stream's
// meta) fails takes the name out of the count again: it does not hold a
// place against MaxStreams until its TTL.
func TestRedisStoreCreateUndone(t *testing.T) {
	c := &failMeta{RedisClient: redisClient(t)}
	s := redisStore(t, c, resume.RedisConfig{MaxStreams: 1})
	ctx := context.Background()
	c.fail.Store(true)
	if err := s.Create(ctx, resumetest.Name(), []byte("o")); err == nil {
		t.Fatal("Create succeeded with its meta refused")
	}
	c.fail.Store(false)
	if err := s.Create(ctx, resumetest.Name(), []byte("o")); err != nil {
		t.Fatalf("a Create after one that failed, in a store of one stream: %v", err)
	}
}

// failMeta fails the scripts that write a stream's meta with its owner
// (three keys, four arguments: the create script), while fail is set.
type failMeta struct {
	resume.RedisClient
	fail atomic.Bool
}

func (c *failMeta) Do(ctx context.Context, args ...any) (any, error) {
	if k, ok := args[3].(string); c.fail.Load() && len(args) == 10 && ok && strings.HasSuffix(k, ":meta") {
		return nil, errors.New("i/o timeout")
	}
	return c.RedisClient.Do(ctx, args...)
}

// TestRedisStoreAppendChecksBatch: the append script refuses a batch whose
// lengths are not its count of whole numbers adding up to its bytes (the
// readers would fail on it), and stores nothing of it.
func TestRedisStoreAppendChecksBatch(t *testing.T) {
	s := redisStore(t, redisClient(t), resume.RedisConfig{})
	ctx := context.Background()
	name := resumetest.Name()
	if err := s.Create(ctx, name, []byte("owner")); err != nil {
		t.Fatal(err)
	}
	for _, b := range []struct {
		count      int
		lens, body string
	}{
		{2, "5,5", "123456789"},
		{2, "5,5", "12345678901"},
		{3, "5,5", "1234567890"},
		{1, "5,5", "1234567890"},
		{2, "-1,11", "1234567890"},
		{2, "2.5,7.5", "1234567890"},
		{2, "a,10", "1234567890"},
		{1, "", "1234567890"},
		{0, "", ""},
	} {
		err := resume.AppendRaw(ctx, s, name, 1, b.count, b.lens, b.body)
		if err == nil || !strings.Contains(err.Error(), "do not match") {
			t.Errorf("%d events, lengths %q, %d bytes: %v, want a refusal", b.count, b.lens, len(b.body), err)
		}
	}
	if info, err := s.Info(ctx, name); err != nil || info.Last != 0 {
		t.Fatalf("after the refusals: %+v, %v; want nothing stored", info, err)
	}
	if err := resume.AppendRaw(ctx, s, name, 1, 2, "4,6", "data1\ndata"); err != nil {
		t.Fatalf("a good batch: %v", err)
	}
	if info, err := s.Info(ctx, name); err != nil || info.Last != 2 {
		t.Fatalf("after a good batch: %+v, %v", info, err)
	}
}

// TestRedisStoreNameWithBrace: a stream name is its keys' Cluster hash
// tag, so a name holding a brace (one starting with "}" would give its
// keys an empty tag, and them different slots) is refused by Create, and
// is no stream for the other calls; nothing is written for it.
func TestRedisStoreNameWithBrace(t *testing.T) {
	c := redisClient(t)
	s := redisStore(t, c, resume.RedisConfig{})
	ctx := context.Background()
	for _, name := range []string{"}" + resumetest.Name(), resumetest.Name() + "{x}", "{" + resumetest.Name()} {
		if err := s.Create(ctx, name, []byte("owner")); err == nil || !strings.Contains(err.Error(), "brace") {
			t.Errorf("Create(%q): %v, want an error naming the brace", name, err)
		}
		if err := s.Append(ctx, name, []resume.Event{resumetest.Event(name, 1)}); !errors.Is(err, resume.ErrNotFound) {
			t.Errorf("Append(%q): %v, want ErrNotFound", name, err)
		}
		if err := s.Visit(ctx, name); !errors.Is(err, resume.ErrNotFound) {
			t.Errorf("Visit(%q): %v, want ErrNotFound", name, err)
		}
	}
	keys, err := c.Do(ctx, "KEYS", s.Config().Prefix+"*")
	if err != nil {
		t.Fatal(err)
	}
	if arr, _ := keys.([]any); len(arr) != 0 {
		t.Errorf("keys written for names with a brace: %v", arr)
	}
}
