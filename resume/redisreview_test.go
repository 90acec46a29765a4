package resume_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/streamguard/streamguard/resume"
	"github.com/streamguard/streamguard/resume/resumetest"
)

// TestRedisStoreEndWithoutEventsExpires: a stream ended before its first
// event has an events key (its end marker) that expires with the others.
func TestRedisStoreEndWithoutEventsExpires(t *testing.T) {
	c := redisClient(t)
	s := redisStore(t, c, resume.RedisConfig{TTL: time.Minute})
	ctx := context.Background()
	for _, end := range []func(context.Context, string) error{s.End, s.EndTruncated} {
		name := "endnoevents" + time.Now().Format("150405.000000000")
		if err := s.Create(ctx, name, []byte("owner")); err != nil {
			t.Fatal(err)
		}
		if err := end(ctx, name); err != nil {
			t.Fatal(err)
		}
		ev := s.Config().Prefix + "s:{" + name + "}:events"
		pttl, err := c.Do(ctx, "PTTL", ev)
		if err != nil {
			t.Fatal(err)
		}
		meta, _ := c.Do(ctx, "PTTL", s.Config().Prefix+"s:{"+name+"}:meta")
		if pttl.(int64) < 0 {
			t.Errorf("%s: PTTL = %v (meta %v): the events key never expires", ev, pttl, meta)
		}
		c.Do(ctx, "DEL", ev)
	}
}

// TestRedisStoreLiveStreamStaysCounted: the sets' scores are renewed at
// most every TTL/8, the keys on every write; a score that ran out before
// its keys let the next Create drop a live stream from the count for good
// (touch's ZADD XX never adds it again), past MaxStreams.
func TestRedisStoreLiveStreamStaysCounted(t *testing.T) {
	c := redisClient(t)
	const ttl = time.Minute // the keys, by Redis's clock, outlive the test
	s := redisStore(t, c, resume.RedisConfig{TTL: ttl, MaxStreams: 2})
	now := time.Now()
	resume.SetRedisClock(s, func() time.Time { return now }) // the replica's clock: the sets' scores
	ctx := context.Background()
	if err := s.Create(ctx, "livea", []byte("o")); err != nil {
		t.Fatal(err)
	}
	s.Append(ctx, "livea", []resume.Event{{Seq: 1, Data: []byte("x")}}) // touch: the score renewed
	now = now.Add(ttl / 16)
	s.Append(ctx, "livea", []resume.Event{{Seq: 2, Data: []byte("x")}}) // the keys renewed, the score not
	now = now.Add(ttl - ttl/16 + ttl/32)                                // the keys live on (until TTL/16+TTL)
	if err := s.Create(ctx, "liveb", []byte("o")); err != nil {
		t.Fatal(err)
	}
	if err := s.Append(ctx, "livea", []resume.Event{{Seq: 3, Data: []byte("x")}}); err != nil {
		t.Fatalf("livea is alive, its append: %v", err)
	}
	if score, _ := c.Do(ctx, "ZSCORE", s.Config().Prefix+"{sets}:live", "livea"); score == nil {
		t.Errorf("the live stream livea (being written) is no longer counted against MaxStreams")
	}
	// With MaxStreams 2: livea and liveb are live, a third is refused.
	if err := s.Create(ctx, "livec", []byte("o")); !errors.Is(err, resume.ErrFull) {
		t.Errorf("a third live stream past MaxStreams=2: %v, want ErrFull", err)
	}
}

// TestRedisStoreAppendBatchAsReadersTakeIt: the append script refuses the
// lengths Lua's tonumber takes and every reader refuses.
func TestRedisStoreAppendBatchAsReadersTakeIt(t *testing.T) {
	c := redisClient(t)
	s := redisStore(t, c, resume.RedisConfig{})
	ctx := context.Background()
	for i, tc := range []struct {
		count      int
		lens, body string
	}{{2, "2,,1", "abc"}, {1, "0x3", "abc"}, {1, " 3", "abc"}, {1, "3e0", "abc"}, {2, "2,1,", "abc"}, {2, ",2,1", "abc"}, {1, "+3", "abc"}} {
		name := "lax" + string(rune('a'+i))
		if err := s.Create(ctx, name, []byte("o")); err != nil {
			t.Fatal(err)
		}
		if err := resume.AppendRaw(ctx, s, name, 1, tc.count, tc.lens, tc.body); err != nil {
			continue // refused: fine
		}
		rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, _, err := s.Read(rctx, name, 0)
		cancel()
		t.Errorf("lens %q accepted by the script; Read: %v", tc.lens, err)
	}
}

// TestRedisStoreAppendRetried: a client that retries an append whose
// reply it lost (go-redis does after a broken connection) sends the batch
// stored last again: it succeeds and adds nothing, instead of failing as
// out of sequence (the server then ended the stream as truncated though
// every event was stored). Another batch of the same events' numbers is
// still refused.
func TestRedisStoreAppendRetried(t *testing.T) {
	c := redisClient(t)
	s := redisStore(t, c, resume.RedisConfig{})
	ctx := context.Background()
	name := resumetest.Name()
	if err := s.Create(ctx, name, []byte("owner")); err != nil {
		t.Fatal(err)
	}
	first := []resume.Event{resumetest.Event(name, 1)}
	batch := []resume.Event{resumetest.Event(name, 2), resumetest.Event(name, 3)}
	for _, b := range [][]resume.Event{first, batch, batch} {
		if err := s.Append(ctx, name, b); err != nil {
			t.Fatalf("Append of %d..%d: %v", b[0].Seq, b[len(b)-1].Seq, err)
		}
	}
	other := []resume.Event{{Seq: 2, Data: []byte("data: other\n")}, resumetest.Event(name, 3)}
	if err := s.Append(ctx, name, other); !errors.Is(err, resume.ErrSequence) {
		t.Errorf("another batch of events 2 and 3: %v, want ErrSequence", err)
	}
	if err := s.Append(ctx, name, first); !errors.Is(err, resume.ErrSequence) {
		t.Errorf("a batch before the last: %v, want ErrSequence", err)
	}
	if err := s.End(ctx, name); err != nil {
		t.Fatal(err)
	}
	got := resumetest.ReadAll(t, s, name, 0)
	if len(got) != 3 || got[1].Seq != 2 || string(got[2].Data) != string(batch[1].Data) {
		t.Fatalf("read %d events, want 1, 2, 3 once each: %v", len(got), got)
	}
}
