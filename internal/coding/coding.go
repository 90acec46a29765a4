// Package coding says whether an HTTP message's body has a content coding:
// the guard passes such a body through, as it cannot frame its events, and
// the server's writer adds no bytes of its own to it.
package coding

import (
	"net/http"
	"strings"
)

// Encoded reports whether h announces a content coding other than
// identity (gzip, br, ...), on any Content-Encoding line or in a list.
// net/http's transport removes the header when it decompresses itself.
func Encoded(h http.Header) bool {
	for _, v := range h.Values("Content-Encoding") {
		for c := range strings.SplitSeq(v, ",") {
			if c = strings.TrimSpace(c); c != "" && !strings.EqualFold(c, "identity") {
				return true
			}
		}
	}
	return false
}
