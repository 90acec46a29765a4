//go:build !linux

package redistest

import "os/exec"

// dieWithParent does nothing here: a server outlives a test process that
// dies without its cleanups.
func dieWithParent(*exec.Cmd) {}
