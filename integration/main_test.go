package integration

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the run if any test leaves a goroutine behind: a stream,
// a connection's read loop, a retry timer or a test server. No goroutine is
// ignored.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
