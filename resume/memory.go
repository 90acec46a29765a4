package resume

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"slices"
	"sort"
	"sync"
	"time"
)

// The in-memory store's defaults.
const (
	// DefaultMaxBytes bounds the event bytes an in-memory store holds: 256
	// MiB, some thousands of long completions.
	DefaultMaxBytes = 256 << 20
	// DefaultMaxStreams bounds the streams it holds: 10,000.
	DefaultMaxStreams = 10_000
	// DefaultMaxAge is how long it keeps a stream nobody writes or reads:
	// 10 minutes, far past any linger, and the time a client has to come
	// back after the end of a stream it lost.
	DefaultMaxAge = 10 * time.Minute
)

// readBatch bounds the events one Read returns.
const (
	readBatchEvents = 512
	readBatchBytes  = 1 << 20
)

// MemoryConfig bounds an in-memory store. The zero value means the
// defaults.
type MemoryConfig struct {
	// MaxBytes bounds the memory the events of all streams take: they are
	// kept in 16 KiB chunks, counted whole (a larger flush of events takes
	// its own), with 4 bytes per event saying where it ends, and a list of
	// each stream's Appends, counted too (56 bytes an Append: a stream
	// appended one small event at a time holds more there than in its
	// events). The chunks of forgotten streams are reused, up to an eighth
	// of MaxBytes kept aside for that. A stream takes its first chunk, and
	// a list of 8 Appends, when it is created: a store whose bytes live
	// streams hold refuses new ones rather than their first events. Zero
	// means DefaultMaxBytes; below minMemBytes (one chunk, and a list of 64
	// Appends: 19.5 KiB) means minMemBytes.
	MaxBytes int64
	// MaxStreams bounds the streams held. Zero means DefaultMaxStreams.
	MaxStreams int
	// MaxAge is how long a stream is kept after its last write or read.
	// Zero means DefaultMaxAge.
	MaxAge time.Duration
	// Now is the clock; nil means time.Now. For tests.
	Now func() time.Time
}

// MemoryStore is a Store in the memory of one process. When it needs room
// for a new stream or event, it forgets expired streams, then ended streams,
// oldest activity first; it never forgets a stream still being written
// before its MaxAge, and answers ErrFull instead, having forgotten no ended
// stream when forgetting them all would not make the room. A forgotten
// stream's name is remembered, as expired, for as long as MaxStreams other
// names allow.
type MemoryStore struct {
	cfg     MemoryConfig
	key     []byte
	mu      sync.Mutex
	streams map[string]*memStream
	bytes   int64
	expired map[string]goneName // names forgotten, each in gone
	gone    []string            // the names forgotten, oldest first
	free    [][]byte            // chunks of forgotten streams, to reuse
	// The streams by their last activity, oldest first (memlru.go): those
	// being written, and the ended ones, with their count and bytes.
	writing, ended memList
	endedN         int
	endedBytes     int64
}

// goneName is a name the store forgot: how many times it is in gone, and
// the owner hash of the last stream of that name, so that only its owner
// learns that it expired.
type goneName struct {
	n     int
	owner []byte
}

type memStream struct {
	name  string
	owner []byte
	// The events, as appended: one batch per Append, its bytes in one
	// array without pointers (nothing for the GC to scan), so that a
	// stream of 100,000 events costs a few thousand allocations.
	batches []memBatch
	last    uint64
	chunks  [][]byte // the memory the batches are in (memchunks.go)
	tail    []byte   // the unused end of the last chunk
	bytes   int64
	ended   bool
	cut     bool          // ended short: EndTruncated
	active  time.Time     // last write or read
	seen    time.Time     // last read, or creation
	written time.Time     // last Append, or creation
	wake    chan struct{} // closed and replaced when a write comes, if readers wait
	waiters int           // readers waiting on wake
	// Its neighbours in its list (memlru.go), by last activity.
	prev, next *memStream
}

// NewMemoryStore returns an empty in-memory store with its own random key.
func NewMemoryStore(cfg MemoryConfig) *MemoryStore {
	if cfg.MaxBytes <= 0 {
		cfg.MaxBytes = DefaultMaxBytes
	}
	cfg.MaxBytes = max(cfg.MaxBytes, minMemBytes)
	if cfg.MaxStreams <= 0 {
		cfg.MaxStreams = DefaultMaxStreams
	}
	if cfg.MaxAge <= 0 {
		cfg.MaxAge = DefaultMaxAge
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	key := make([]byte, 32)
	rand.Read(key)
	return &MemoryStore{cfg: cfg, key: key, streams: map[string]*memStream{}, expired: map[string]goneName{}}
}

// Key returns the store's key.
func (m *MemoryStore) Key(context.Context) ([]byte, error) { return m.key, nil }

// Create registers a stream.
func (m *MemoryStore) Create(_ context.Context, stream string, owner []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.streams[stream]; ok {
		return ErrExists
	}
	// Room for it, its first chunk and its list of Appends, taken now, so
	// that a store whose bytes are all taken by live streams refuses new
	// ones (503) instead of taking them and refusing their events.
	now := m.cfg.Now()
	if !m.evict(now, 1, memChunk+firstBatches*batchSize) {
		return ErrFull
	}
	s := &memStream{name: stream, owner: append([]byte(nil), owner...), active: now, seen: now, written: now, wake: make(chan struct{})}
	m.grow(s, memChunk)
	s.batches = make([]memBatch, 0, firstBatches) // and its list of Appends: its first Append takes nothing more
	s.bytes += firstBatches * batchSize
	m.bytes += firstBatches * batchSize
	m.streams[stream] = s
	m.writing.push(s)
	return nil
}

// Append adds events to a stream.
func (m *MemoryStore) Append(_ context.Context, stream string, events []Event) error {
	var size int64
	for _, e := range events {
		size += int64(len(e.Data))
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.cfg.Now()
	s, err := m.live(stream, now)
	if err != nil {
		return err
	}
	if s.ended && len(events) > 0 {
		return errEnded
	}
	for i, e := range events {
		if e.Seq != s.last+uint64(i)+1 {
			return ErrSequence
		}
	}
	// The events' bytes, then where each ends (4 bytes each).
	size += int64(4 * len(events))
	room := s.room(int(size))
	if len(events) > 0 {
		room += s.batchRoom()
	}
	if !m.evict(now, 0, room) {
		return ErrFull
	}
	if len(events) > 0 {
		mem := m.place(s, int(size))
		ends := mem[len(mem)-4*len(events):]
		b := memBatch{first: s.last + 1, data: mem[: 0 : len(mem)-len(ends)], ends: ends}
		for i, e := range events {
			b.data = append(b.data, e.Data...)
			binary.LittleEndian.PutUint32(ends[4*i:], uint32(len(b.data)))
		}
		m.addBatch(s, b)
		s.last += uint64(len(events))
		s.notify()
	}
	s.written = now
	m.touch(s, now)
	return nil
}

// Visit counts as a reader's visit (Info.Seen), without reading.
func (m *MemoryStore) Visit(_ context.Context, stream string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.cfg.Now()
	s, err := m.live(stream, now)
	if err != nil {
		return err
	}
	s.seen = now
	m.touch(s, now)
	return nil
}

// End marks a stream complete.
func (m *MemoryStore) End(_ context.Context, stream string) error { return m.end(stream, false) }

// EndTruncated marks a stream ended short of its end.
func (m *MemoryStore) EndTruncated(_ context.Context, stream string) error {
	return m.end(stream, true)
}

// Delete forgets a stream, leaving no trace of it.
func (m *MemoryStore) Delete(_ context.Context, stream string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if s, ok := m.streams[stream]; ok {
		delete(m.streams, stream)
		m.unlink(s)
		m.release(s)
		s.ended = true
		s.notify()
		if m.expired[stream].n > 0 { // a name of the past, held again: now never held
			delete(m.expired, stream)
			m.gone = slices.DeleteFunc(m.gone, func(n string) bool { return n == stream })
		}
	}
	return nil
}

func (m *MemoryStore) end(stream string, cut bool) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.cfg.Now()
	s, err := m.live(stream, now)
	if err != nil {
		return err
	}
	if !s.ended {
		m.unlink(s)
		s.ended, s.cut = true, cut
		m.ended.push(s)
		m.endedN++
		m.endedBytes += s.bytes
	}
	m.touch(s, now)
	s.notify()
	return nil
}

// Info returns what the store knows of a stream.
func (m *MemoryStore) Info(_ context.Context, stream string) (Info, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, err := m.live(stream, m.cfg.Now())
	if err != nil {
		return Info{}, err
	}
	return Info{Owner: s.owner, Last: s.last, Ended: s.ended, Seen: s.seen, Written: s.written}, nil
}

// Read returns the events after after, waiting for one while the stream
// is live.
func (m *MemoryStore) Read(ctx context.Context, stream string, after uint64) ([]Event, bool, error) {
	for {
		m.mu.Lock()
		now := m.cfg.Now()
		s, err := m.live(stream, now)
		if err != nil {
			m.mu.Unlock()
			return nil, false, err
		}
		s.seen = now
		m.touch(s, now)
		if after < s.last {
			evs := s.read(after)
			ended := s.ended && !s.cut && evs[len(evs)-1].Seq == s.last
			m.mu.Unlock()
			return evs, ended, nil
		}
		if s.ended {
			cut := s.cut
			m.mu.Unlock()
			if cut {
				return nil, false, ErrTruncated
			}
			return nil, true, nil
		}
		wake := s.wake
		s.waiters++
		m.mu.Unlock()
		var canceled error
		select {
		case <-wake:
		case <-ctx.Done():
			canceled = ctx.Err()
		}
		m.mu.Lock()
		s.waiters--
		m.mu.Unlock()
		if canceled != nil {
			return nil, false, canceled
		}
	}
}

// Len returns how many streams and event bytes the store holds, once it
// has forgotten the expired ones.
func (m *MemoryStore) Len() (streams int, bytes int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.evict(m.cfg.Now(), 0, 0)
	return len(m.streams), m.bytes
}

// memBatch is the events of one Append: event first+i is
// data[end(i-1):end(i)]. Both slices are in the stream's chunks.
type memBatch struct {
	first uint64
	data  []byte
	ends  []byte // little-endian uint32s
}

func (b *memBatch) len() int { return len(b.ends) / 4 }

// end returns where event first+i ends in data; end(-1) is 0.
func (b *memBatch) end(i int) int {
	if i < 0 {
		return 0
	}
	return int(binary.LittleEndian.Uint32(b.ends[4*i:]))
}

// read returns the events after after (< s.last) that fit one Read, in
// memory of their own: a stream's chunks are reused once it is forgotten.
// Called with the store's mu held.
func (s *memStream) read(after uint64) []Event {
	i := sort.Search(len(s.batches), func(i int) bool { return s.batches[i].first > after+1 }) - 1
	var evs []Event
	size := 0
	for ; i < len(s.batches); i++ {
		b := &s.batches[i]
		for j := int(after + 1 - b.first); j < b.len(); j++ {
			start, end := b.end(j-1), b.end(j)
			d := b.data[start:end:end]
			if len(evs) == readBatchEvents || (len(evs) > 0 && size+len(d) > readBatchBytes) {
				return detach(evs, size)
			}
			size += len(d)
			after++
			evs = append(evs, Event{Seq: after, Data: d})
		}
	}
	return detach(evs, size)
}

// notify wakes the readers waiting for a write. Called with mu held.
func (s *memStream) notify() {
	if s.waiters > 0 {
		close(s.wake)
		s.wake = make(chan struct{})
	}
}

// live returns a stream the store holds and has not let expire by now.
// Called with mu held, now read once under it for all the caller does, so
// that nothing the caller does after (evict) can take the stream for
// expired.
func (m *MemoryStore) live(stream string, now time.Time) (*memStream, error) {
	s, ok := m.streams[stream]
	if ok && now.Sub(s.active) > m.cfg.MaxAge {
		m.forget(s)
		ok = false
	}
	if ok {
		return s, nil
	}
	if g := m.expired[stream]; g.n > 0 {
		return nil, &ExpiredError{Owner: g.owner}
	}
	return nil, ErrNotFound
}
