package resume

import "time"

// memList is a list of a memory store's streams, least recently active
// first: a stream moves to its back at each write or read (touch), so
// that the store finds the streams to forget at its front, in time that
// does not grow with the streams it holds. The links are in the streams
// themselves (memStream's prev and next): moving one allocates nothing.
type memList struct{ front, back *memStream }

func (l *memList) push(s *memStream) {
	s.prev, s.next = l.back, nil
	if l.back != nil {
		l.back.next = s
	} else {
		l.front = s
	}
	l.back = s
}

func (l *memList) remove(s *memStream) {
	if s.prev != nil {
		s.prev.next = s.next
	} else {
		l.front = s.next
	}
	if s.next != nil {
		s.next.prev = s.prev
	} else {
		l.back = s.prev
	}
	s.prev, s.next = nil, nil
}

// list returns the list s is in. Called with mu held.
func (m *MemoryStore) list(s *memStream) *memList {
	if s.ended {
		return &m.ended
	}
	return &m.writing
}

// touch records activity on s at now: it moves to the back of its list.
// Called with mu held, now from the store's clock under it, so that each
// list stays in the order of its streams' activity.
func (m *MemoryStore) touch(s *memStream, now time.Time) {
	s.active = now
	l := m.list(s)
	if l.back != s {
		l.remove(s)
		l.push(s)
	}
}

// unlink takes s out of its list, and its count and bytes out of the
// ended streams' when it is one; a stream in no list stays as it is.
// Called with mu held.
func (m *MemoryStore) unlink(s *memStream) {
	l := m.list(s)
	if s.prev == nil && l.front != s {
		return
	}
	l.remove(s)
	if s.ended {
		m.endedN--
		m.endedBytes -= s.bytes
	}
}

// evict makes room for streams more streams and size more bytes: it
// forgets expired streams, then, if forgetting every ended stream would
// make the room, ended ones, least recently active first, until it is
// made. It reports whether it is; when it is not, it has forgotten no
// stream that had not expired. Called with mu held.
func (m *MemoryStore) evict(now time.Time, streams int, size int64) bool {
	for _, l := range [...]*memList{&m.writing, &m.ended} {
		for s := l.front; s != nil && now.Sub(s.active) > m.cfg.MaxAge; s = l.front {
			m.forget(s)
		}
	}
	fits := func(n int, bytes int64) bool {
		return n+streams <= m.cfg.MaxStreams && bytes+size <= m.cfg.MaxBytes
	}
	if !fits(len(m.streams)-m.endedN, m.bytes-m.endedBytes) {
		return false
	}
	for !fits(len(m.streams), m.bytes) && m.ended.front != nil {
		m.forget(m.ended.front)
	}
	return fits(len(m.streams), m.bytes)
}

// forget drops a stream and remembers its name as expired, for as long as
// MaxStreams names forgotten after it allow. Called with mu held.
func (m *MemoryStore) forget(s *memStream) {
	name := s.name
	m.unlink(s)
	delete(m.streams, name)
	m.release(s)
	s.ended = true
	s.notify() // a reader waiting on it sees it gone
	m.expired[name] = goneName{n: m.expired[name].n + 1, owner: s.owner}
	m.gone = append(m.gone, name)
	if len(m.gone) > m.cfg.MaxStreams {
		if old := m.gone[0]; m.expired[old].n > 1 {
			g := m.expired[old]
			g.n--
			m.expired[old] = g
		} else {
			delete(m.expired, old)
		}
		m.gone = m.gone[1:]
	}
}
