package resume

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Append adds events to a stream, in one script per batch of up to 512
// events (4 MiB), which adds them as one entry: the script checks that the
// batch follows the stream's last event, that the stream has not ended
// (ErrSequence, both) and that it fits MaxLen and MaxStreamBytes
// (ErrFull), and adds it whole
// or not at all. A longer Append is several batches, each whole; it stops
// at the first refused. The command is built in pooled memory, the
// stream's keys kept from the last Append: a few allocations per call. An
// Append of no events records that the writer is alive (Info.Written).
func (s *RedisStore) Append(ctx context.Context, stream string, events []Event) error {
	if !validRedisName(stream) {
		return ErrNotFound
	}
	if len(events) == 0 {
		_, err := aliveScript.run(ctx, s.rdb, s.keys(stream), s.ttl, s.gone)
		if err == nil {
			s.touch(ctx, stream)
		}
		return err
	}
	for i := 1; i < len(events); i++ {
		if events[i].Seq != events[i-1].Seq+1 {
			return ErrSequence
		}
	}
	buf := appendBufs.Get().(*appendBuf)
	defer buf.release()
	if buf.store != s || buf.stream != stream {
		buf.store, buf.stream = s, stream
		for i, k := range s.keys(stream) {
			buf.keys[i] = k
		}
	}
	for len(events) > 0 {
		n, size := 0, 0
		for n < len(events) && n < redisAppendBatch && (n == 0 || size+len(events[n].Data) <= redisAppendBytes) {
			size += len(events[n].Data)
			n++
		}
		buf.encode(events[:n])
		buf.cmd = append(appendScript.evalsha(buf.cmd[:0], buf.keys[:]...),
			s.ttl, s.gone, s.maxLen, events[0].Seq, n, buf.lens, buf.body, s.maxBytes)
		if _, err := appendScript.do(ctx, s.rdb, buf.cmd); err != nil {
			return err
		}
		events = events[n:]
	}
	s.touch(ctx, stream)
	return nil
}

// appendBuf holds a batch of events as the append script takes them, and
// the command.
type appendBuf struct {
	body   []byte // their bytes end to end
	lens   []byte // their lengths, "12,7,..."
	cmd    []any
	store  *RedisStore // the stream whose keys are kept
	stream string
	keys   [3]any
}

// appendBufs keeps appendBufs; release drops bytes past 64 KiB.
var appendBufs = sync.Pool{New: func() any { return new(appendBuf) }}

func (b *appendBuf) release() {
	if cap(b.body) > 64<<10 {
		b.body = nil
	}
	clear(b.cmd[:cap(b.cmd)]) // the events' bytes stay the caller's
	appendBufs.Put(b)
}

func (b *appendBuf) encode(events []Event) {
	b.body, b.lens = b.body[:0], b.lens[:0]
	for i, e := range events {
		if i > 0 {
			b.lens = append(b.lens, ',')
		}
		b.lens = strconv.AppendInt(b.lens, int64(len(e.Data)), 10)
		b.body = append(b.body, e.Data...)
	}
}

// Read returns the events after after, at most 512 of them and 1 MiB
// (an event larger comes alone): those of the entry that holds the first,
// then whole entries (one per Append of up to 512 events and 4 MiB), and
// whether the stream ended with the last of them. When there is none yet, it waits in XREAD BLOCK until there is, the
// stream ends, or ctx ends. Every call records a visit (Info.Seen) and
// renews the stream's TTL.
func (s *RedisStore) Read(ctx context.Context, stream string, after uint64) ([]Event, bool, error) {
	if !validRedisName(stream) {
		return nil, false, ErrNotFound
	}
	for {
		evs, ended, err := s.readOnce(ctx, stream, after)
		if err != nil || len(evs) > 0 || ended {
			return evs, ended, err
		}
		if err := s.wait(ctx, stream, after); err != nil {
			return nil, false, err
		}
	}
}

// Visit counts as a reader's visit (Info.Seen), without reading, and
// renews the stream's TTL as a Read does.
func (s *RedisStore) Visit(ctx context.Context, stream string) error {
	if !validRedisName(stream) {
		return ErrNotFound
	}
	if _, err := visitScript.run(ctx, s.rdb, s.keys(stream), s.ttl, s.gone); err != nil {
		return err
	}
	s.touch(ctx, stream)
	return nil
}

// readOnce runs the read script once.
func (s *RedisStore) readOnce(ctx context.Context, stream string, after uint64) ([]Event, bool, error) {
	from := "0-" + strconv.FormatUint(after+1, 10) // used only when after < last
	v, err := readScript.run(ctx, s.rdb, s.keys(stream), s.ttl, s.gone, s.now().UnixMilli(),
		after, from, redisReadBatch, redisReadBytes)
	if err != nil {
		return nil, false, err
	}
	s.touch(ctx, stream)
	r, _ := v.([]any)
	if len(r) != 6 {
		return nil, false, errRedisReply("read", v)
	}
	last, err1 := parseRedisUint(r[0])
	ended, _ := r[1].(string)
	first, err2 := parseRedisUint(r[2])
	lens, _ := r[3].(string)
	body, _ := r[4].(string)
	cut, _ := r[5].(string)
	if err := errors.Join(err1, err2); err != nil {
		return nil, false, fmt.Errorf("resume: redis read of %q: %w", stream, err)
	}
	evs, err := decodeEvents(first, lens, body)
	if err != nil {
		return nil, false, fmt.Errorf("resume: redis read of %q: %w", stream, err)
	}
	if len(evs) == 0 && after < last {
		// Waiting would not help: the entry after is there, unread.
		return nil, false, fmt.Errorf("resume: redis stream %q holds %d events, but none after %d in a form this store reads", stream, last, after)
	}
	done := ended == "1"
	if len(evs) > 0 {
		done = done && evs[len(evs)-1].Seq == last
	}
	switch {
	case done && cut == "1" && len(evs) == 0:
		return nil, false, ErrTruncated
	case done && cut == "1":
		return evs, false, nil // ErrTruncated comes with the next Read
	}
	return evs, done, nil
}

// decodeEvents splits body into the events first, first+1, ... by their
// lengths, "12,7,...", which must add up to body's. The events share one
// array; each one's capacity ends with its bytes.
func decodeEvents(first uint64, lens, body string) ([]Event, error) {
	if lens == "" {
		if body != "" {
			return nil, errors.New("event bytes without lengths")
		}
		return nil, nil
	}
	data := []byte(body)
	evs := make([]Event, 0, strings.Count(lens, ",")+1)
	pos := 0
	for seq := first; lens != ""; seq++ {
		var item string
		item, lens, _ = strings.Cut(lens, ",")
		n, err := strconv.Atoi(item)
		if err != nil || n < 0 || n > len(data)-pos {
			return nil, fmt.Errorf("a bad event length %q", item)
		}
		evs = append(evs, Event{Seq: seq, Data: data[pos : pos+n : pos+n]})
		pos += n
	}
	if pos != len(data) {
		return nil, fmt.Errorf("%d event bytes past the lengths", len(data)-pos)
	}
	return evs, nil
}

// wait blocks until the stream has an entry past 0-{after} (an event or
// the end marker), for at most a second, or until ctx ends. When ctx can
// end, the XREAD runs in a goroutine, so that wait returns as soon as ctx
// ends (not every client aborts a blocked read on its context); the
// goroutine finishes within the block time, and Close waits for it.
func (s *RedisStore) wait(ctx context.Context, stream string, after uint64) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	block := redisBlock
	if dl, ok := ctx.Deadline(); ok {
		block = min(block, time.Until(dl))
	}
	cmd := []any{"XREAD", "COUNT", 1, "BLOCK", max(block, redisMinBlock).Milliseconds(),
		"STREAMS", s.keys(stream)[1], "0-" + strconv.FormatUint(after, 10)}
	if ctx.Done() == nil {
		_, err := s.rdb.Do(ctx, cmd...)
		return err
	}
	done := make(chan error, 1)
	s.bg.Add(1)
	go func() {
		defer s.bg.Done()
		_, err := s.rdb.Do(context.WithoutCancel(ctx), cmd...)
		done <- err
	}()
	select {
	case err := <-done:
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}
