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

// remove takes s out of l; a stream in no list stays as it is.
func (l *memList) remove(s *memStream) {
	if s.prev == nil && l.front != s {
		return
	}
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

// evict forgets expired streams and then ended ones, least recently active
// first, until a new stream (stream) or size more bytes fit. It reports
// whether they do. Called with mu held.
func (m *MemoryStore) evict(now time.Time, size int64, stream bool) bool {
	for _, l := range [...]*memList{&m.writing, &m.ended} {
		for s := l.front; s != nil && now.Sub(s.active) > m.cfg.MaxAge; s = l.front {
			m.forget(s.name, s)
		}
	}
	for {
		if stream && len(m.streams) < m.cfg.MaxStreams || !stream && m.bytes+size <= m.cfg.MaxBytes {
			return true
		}
		if m.ended.front == nil {
			return false
		}
		m.forget(m.ended.front.name, m.ended.front)
	}
}

// forget drops a stream and remembers its name as expired. Called with mu
// held.
func (m *MemoryStore) forget(name string, s *memStream) {
	m.list(s).remove(s)
	delete(m.streams, name)
	m.release(s)
	s.ended = true
	s.notify() // a reader waiting on it sees it gone
	m.expired[name] = struct{}{}
	m.gone = append(m.gone, name)
	if len(m.gone) > m.cfg.MaxStreams {
		delete(m.expired, m.gone[0])
		m.gone = m.gone[1:]
	}
}
