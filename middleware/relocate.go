package middleware

import (
	"net/http"
	"net/url"
	"strings"
)

// relocate rewrites h's header name (Location, Content-Location) when it
// points into upstream: an absolute URL of upstream's scheme and host, or a
// path from the root, under upstream's path. It becomes the path under the
// relay (upstream's path taken off, upstream's own query values too,
// wherever they are), so the caller comes back through the relay and never
// sees the upstream's address or the query values (keys) the relay adds.
// Its dot segments are resolved first, as the caller would resolve them.
// Any other value (elsewhere on upstream's origin, which the relay does not
// serve, or on another) keeps its address but loses upstream's query values
// too.
func relocate(h http.Header, name string, upstream *url.URL) {
	loc := h.Get(name)
	u, err := url.Parse(loc)
	if loc == "" || err != nil || u.Opaque != "" {
		return
	}
	q := dropPairs(u.RawQuery, upstream.RawQuery)
	into := (u.Host == "" && strings.HasPrefix(loc, "/") && !strings.HasPrefix(loc, "//")) || (u.Host != "" && sameOrigin(u, upstream))
	base := strings.TrimSuffix(upstream.EscapedPath(), "/")
	rest, ok := strings.CutPrefix(removeDots(u.EscapedPath()), base)
	if !into || !ok || (rest != "" && rest[0] != '/') {
		if q != u.RawQuery {
			// "?" keeps a Location of a query alone from becoming "",
			// which resolves to the caller's own URL, query and all.
			u.RawQuery, u.ForceQuery = q, q == "" && u.Host == "" && u.Path == ""
			h.Set(name, u.String())
		}
		return
	}
	u.RawQuery = q
	out := "/" + strings.TrimLeft(rest, "/") // never "//host": another origin
	if u.RawQuery != "" {
		out += "?" + u.RawQuery
	}
	if u.Fragment != "" {
		out += "#" + u.EscapedFragment()
	}
	h.Set(name, out)
}

// removeDots resolves the "." and ".." segments of an escaped path (raw or
// %2e, as URL parsers read them), as RFC 3986's remove_dot_segments does.
func removeDots(p string) string {
	if !dotSegment(p) {
		return p
	}
	var out []string
	segs := strings.Split(p, "/")
	for i, seg := range segs {
		switch strings.ReplaceAll(strings.ToLower(seg), "%2e", ".") {
		case ".":
		case "..":
			if len(out) > 1 {
				out = out[:len(out)-1]
			}
		default:
			out = append(out, seg)
			continue
		}
		if i == len(segs)-1 {
			out = append(out, "") // a last dot segment leaves a directory
		}
	}
	return strings.Join(out, "/")
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
