package streamguard

import (
	"time"

	"github.com/streamguard/streamguard/internal/errprefix"
)

// The platform's time budgets. The gateway answers 504 when a prediction runs
// past them; they are not configurable on the platform side, so a client whose
// own timeout is shorter gives up before the gateway's answer arrives, and a
// client whose timeout is a wall-clock limit on the whole response kills
// healthy streams.
const (
	// SyncBudget is the request timeout of synchronous and streaming
	// predictions: 1200 s (the platform's inference errors guide, its 504 row,
	// and the API overview; see docs/platform.md).
	SyncBudget = 1200 * time.Second
	// AsyncBudget is the longest an async prediction may run: 3600 s.
	AsyncBudget = 3600 * time.Second
)

// The platform's size limits.
const (
	// AsyncMaxBody is the default per-organization cap on an async request
	// body: 256 KiB (262,144 bytes). Larger async requests get a 413.
	AsyncMaxBody = 262144 // bytes

	// EdgeMaxBody is the ingress proxy's fixed cap on every request body,
	// 100 MiB, checked before the request reaches the model.
	EdgeMaxBody = 100 << 20 // bytes
)

// Bounds this package applies to what it reads from a server.
const (
	// MaxErrorBody is how much of an error response body [Check] reads to
	// classify it: 64 KiB, enough for any JSON error envelope, small enough
	// that a hostile or runaway body (a 1 GB HTML page) costs nothing.
	MaxErrorBody = errprefix.Max

	// MaxMessage caps [Error.Message] when it is taken from a response body,
	// so that an error line stays a line: 512 bytes.
	MaxMessage = 512
)
