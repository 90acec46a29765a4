package coding

import (
	"net/http"
	"testing"
)

func TestEncoded(t *testing.T) {
	for _, c := range []struct {
		vals []string
		want bool
	}{
		{nil, false}, {[]string{""}, false}, {[]string{"identity"}, false}, {[]string{" Identity , "}, false},
		{[]string{"gzip"}, true}, {[]string{"identity, gzip"}, true}, {[]string{"identity", "br"}, true},
	} {
		if got := Encoded(http.Header{"Content-Encoding": c.vals}); got != c.want {
			t.Errorf("%q: %v", c.vals, got)
		}
	}
}
