package resume

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
	case size > memChunk:
		return int64(size)
	}
	return memChunk
}

// place returns size bytes of memory for a batch of s: the rest of its
// last chunk, a chunk of its own, or a reused one. Called with mu held,
// once room's bytes fit.
func (m *MemoryStore) place(s *memStream, size int) []byte {
	if size > len(s.tail) {
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
	d := s.tail[:size:size]
	s.tail = s.tail[size:]
	return d
}

// release gives back the memory of a forgotten stream, keeping its chunks
// for reuse up to an eighth of MaxBytes. Called with mu held.
func (m *MemoryStore) release(s *memStream) {
	maxFree := int(m.cfg.MaxBytes / 8 / memChunk)
	for _, c := range s.chunks {
		if len(c) == memChunk && len(m.free) < maxFree {
			m.free = append(m.free, c)
		}
	}
	m.bytes -= s.bytes
	s.chunks, s.tail, s.batches, s.bytes = nil, nil, nil, 0
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
