//go:build linux || darwin

package bench

import (
	"fmt"
	"syscall"
)

// raiseFileLimit makes sure the process may hold need open files, raising
// the soft RLIMIT_NOFILE up to the hard one if it must. (Go already raises
// it to the hard limit at startup on Linux; a lowered hard limit is what
// this catches.)
func raiseFileLimit(need uint64) error {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return err
	}
	if lim.Cur >= need {
		return nil
	}
	if lim.Max < need {
		return fmt.Errorf("hard limit %d (ulimit -Hn)", lim.Max)
	}
	lim.Cur = need
	return syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
}
