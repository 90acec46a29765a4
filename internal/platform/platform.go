// Package platform holds the facts of the built-in platform (Baseten's
// gateway) that several packages of this module apply and no user needs to
// call: which routes are async, and the words of its 413.
package platform

import (
	"strconv"
	"strings"
)

// IsAsyncPath reports whether path is one of the platform's async routes
// (ending in /async_predict or /async_run_remote), which get
// streamguard.AsyncBudget and streamguard.AsyncMaxBody instead of the sync
// limits.
func IsAsyncPath(path string) bool {
	return strings.HasSuffix(path, "/async_predict") || strings.HasSuffix(path, "/async_run_remote")
}

// TooLargeMessage is the platform's 413 message for a body of size bytes
// over limit: "payload size of X bytes exceeds maximum size of Y bytes".
func TooLargeMessage(size, limit int64) string {
	return "payload size of " + strconv.FormatInt(size, 10) + " bytes exceeds maximum size of " +
		strconv.FormatInt(limit, 10) + " bytes"
}
