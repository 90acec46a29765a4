package gatewaytest

import (
	"bytes"
	"sync"
)

// SyncBuffer is a bytes.Buffer safe for writers and readers at once: what
// a test gives a server's logger, or a command's output, and reads while
// they run.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns what was written so far.
func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
