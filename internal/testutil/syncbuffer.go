package testutil

import (
	"bytes"
	"sync"
)

// SyncBuffer is a log destination that goroutines under test and the test
// itself may share (bytes.Buffer is not safe for that).
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
