package resume

import "unsafe"

// memChunk is the size of the chunks the in-memory store keeps events in:
// most flushes of a stream fit one, and a store that forgets streams as fast
// as it takes them reuses their chunks instead of asking the runtime (and
// the kernel) for fresh memory, which costs a page fault per 4 KiB.
const memChunk = 16 << 10

// room returns the memory a batch of size bytes takes beyond what s has
// left in its last chunk.
func (s *memStream) room(size int) int64 {
	switch {
	case size <= len(s.tail):
		return 0
	case size > memChunk && s.untouched():
		return int64(size - len(s.tail)) // its own chunk, for the one Create took
	case size > memChunk:
		return int64(size)
	}
	return memChunk
}

// untouched reports whether s holds the chunk Create took, and nothing in
// it: a first batch too large for it takes a chunk of its own instead.
func (s *memStream) untouched() bool {
	return len(s.batches) == 0 && len(s.chunks) == 1 && len(s.tail) == len(s.chunks[0])
}

// place returns size bytes of memory for a batch of s: the rest of its
// last chunk, a chunk of its own, or a reused one. Called with mu held,
// once room's bytes fit.
func (m *MemoryStore) place(s *memStream, size int) []byte {
	if size > len(s.tail) {
		m.grow(s, size)
	}
	d := s.tail[:size:size]
	s.tail = s.tail[size:]
	return d
}

// grow gives s a new last chunk, for a batch of size bytes: a chunk of its
// own, or a reused one. Called with mu held, once room's bytes fit.
func (m *MemoryStore) grow(s *memStream, size int) {
	if size > memChunk && s.untouched() {
		c := s.chunks[0]
		s.chunks, s.tail, s.bytes, m.bytes = s.chunks[:0], nil, s.bytes-int64(len(c)), m.bytes-int64(len(c))
		m.keep(c)
	}
	var c []byte
	switch n := len(m.free); {
	case size > memChunk:
		c = make([]byte, size)
	case n > 0:
		c, m.free = m.free[n-1], m.free[:n-1]
	default:
		c = make([]byte, memChunk)
	}
	s.chunks = append(s.chunks, c)
	s.bytes += int64(len(c))
	m.bytes += int64(len(c))
	s.tail = c
}

// batchSize is what one batch costs in a stream's list of batches. It
// counts with the chunks in the store's bytes: a stream of many small
// Appends holds more memory in that list than in its events.
const batchSize = int64(unsafe.Sizeof(memBatch{}))

// minMemBytes is the least MaxBytes: a store that took streams and stored
// none of their events would be useless.
const minMemBytes = memChunk + 64*batchSize

// firstBatches is the room for Appends a stream's list has from its
// Create on; it doubles when full.
const firstBatches = 8

// batchRoom is the memory adding a batch to s takes beyond its chunks: the
// growth of its list of batches, when it is full (see addBatch).
func (s *memStream) batchRoom() int64 {
	if len(s.batches) < cap(s.batches) {
		return 0
	}
	return int64(max(firstBatches, 2*cap(s.batches))-cap(s.batches)) * batchSize
}

// addBatch adds b to s, counting the growth of its list of batches in the
// stream's and the store's bytes. Called with mu held, once batchRoom's
// bytes fit.
func (m *MemoryStore) addBatch(s *memStream, b memBatch) {
	if grown := s.batchRoom(); grown > 0 {
		nb := make([]memBatch, len(s.batches), max(firstBatches, 2*cap(s.batches)))
		copy(nb, s.batches)
		s.batches = nb
		s.bytes += grown
		m.bytes += grown
	}
	s.batches = append(s.batches, b)
}

// release gives back the memory of a forgotten stream, keeping its chunks
// for reuse up to an eighth of MaxBytes. Called with mu held.
func (m *MemoryStore) release(s *memStream) {
	for _, c := range s.chunks {
		m.keep(c)
	}
	m.bytes -= s.bytes
	s.chunks, s.tail, s.batches, s.bytes = nil, nil, nil, 0
}

// keep keeps a chunk no stream holds for reuse, up to an eighth of
// MaxBytes. Called with mu held.
func (m *MemoryStore) keep(c []byte) {
	if len(c) == memChunk && len(m.free) < int(m.cfg.MaxBytes/8/memChunk) {
		m.free = append(m.free, c)
	}
}

// detach copies events into one array of their own.
func detach(evs []Event, size int) []Event {
	buf := make([]byte, 0, size)
	for i := range evs {
		at := len(buf)
		buf = append(buf, evs[i].Data...)
		evs[i].Data = buf[at:len(buf):len(buf)]
	}
	return evs
}
