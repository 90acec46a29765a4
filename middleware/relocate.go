package middleware

import (
	"net/http"
	"net/url"
	"strings"
)

// relocate rewrites h's Location when it points into upstream: an
// absolute URL of upstream's scheme and host, or a path from the root,
// under upstream's path. It becomes the path under the relay (upstream's
// path taken off, upstream's own query values too, wherever they are), so
// the caller comes back
// through the relay and never sees the upstream's address or the query
// values (keys) the relay adds.
func relocate(h http.Header, upstream *url.URL) {
	loc := h.Get("Location")
	u, err := url.Parse(loc)
	if loc == "" || err != nil || u.Opaque != "" || (u.Host == "" && !strings.HasPrefix(loc, "/")) || strings.HasPrefix(loc, "//") {
		return
	}
	if u.Host != "" && !sameOrigin(u, upstream) {
		return
	}
	if dotSegment(u.EscapedPath()) {
		return // where it leads is for its resolution, not for a prefix
	}
	base := strings.TrimSuffix(upstream.EscapedPath(), "/")
	rest, ok := strings.CutPrefix(u.EscapedPath(), base)
	if !ok || (rest != "" && rest[0] != '/') {
		return
	}
	u.RawQuery = dropPairs(u.RawQuery, upstream.RawQuery)
	out := "/" + strings.TrimLeft(rest, "/") // never "//host": another origin
	if u.RawQuery != "" {
		out += "?" + u.RawQuery
	}
	if u.Fragment != "" {
		out += "#" + u.EscapedFragment()
	}
	h.Set("Location", out)
}

// dropPairs returns query q without the name=value pairs of own (the
// relay's own, from upstream's URL), wherever they are and however they
// are escaped.
func dropPairs(q, own string) string {
	if own == "" || q == "" {
		return q
	}
	drop := map[string]bool{}
	for pair := range strings.SplitSeq(own, "&") {
		drop[unescapePair(pair)] = true
	}
	var kept []string
	for pair := range strings.SplitSeq(q, "&") {
		if !drop[unescapePair(pair)] {
			kept = append(kept, pair)
		}
	}
	return strings.Join(kept, "&")
}

// unescapePair returns a query's name=value pair unescaped, or as it is
// when it does not unescape.
func unescapePair(pair string) string {
	k, v, _ := strings.Cut(pair, "=")
	dk, err1 := url.QueryUnescape(k)
	dv, err2 := url.QueryUnescape(v)
	if err1 != nil || err2 != nil {
		return pair
	}
	return dk + "=" + dv
}
