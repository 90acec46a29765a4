package middleware

import (
	"encoding/base64"
	"net/http"
	"net/url"
	"strings"

	"github.com/streamguard/streamguard/internal/redact"
)

// ownSecrets returns the relay's own credentials, those upstream's URL
// holds, as redact.Secrets finds them: its userinfo, as the Basic
// credential net/http makes of it (so a user name of letters beside a
// real password, "user" or "admin", is not one: it would mangle headers
// that hold the word), and its query values that are keys.
func ownSecrets(upstream *url.URL) []string {
	u := *upstream
	u.User = nil
	r := &http.Request{URL: &u, Header: http.Header{}}
	if ui := upstream.User; ui != nil {
		pass, _ := ui.Password()
		r.Header.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(ui.Username()+":"+pass)))
		if pass != "" {
			u.User = url.UserPassword("", pass) // whole, where a user with a colon hides it from Basic's split
		}
	}
	return redact.Secrets(r)
}

// scrubHeader replaces each of secrets in h's values by redact.Marker:
// an upstream that echoes the relay's own key in a header (a login
// redirect's return URL, a debugging echo of the request) does not hand it
// to the relay's caller. Key shapes are left alone: a header is the
// caller's to read, and a key of the caller's own, echoed back, is its own.
func scrubHeader(h http.Header, secrets []string) {
	if len(secrets) == 0 {
		return
	}
	for _, vs := range h {
		for i, v := range vs {
			for _, s := range secrets {
				if strings.Contains(v, s) {
					v = strings.ReplaceAll(v, s, redact.Marker)
				}
			}
			vs[i] = v
		}
	}
}

// relocate rewrites every value of h's header name (Location,
// Content-Location) that points into upstream, as relocated does.
func relocate(h http.Header, name string, upstream *url.URL) {
	for i, v := range h[name] {
		h[name][i] = relocated(v, upstream)
	}
}

// relocateLinks rewrites the URI references of h's Link values (RFC 8288:
// "<uri>; rel=next, ...") and the URL of its Refresh ("5; url=...") as
// relocate does a Location's: an upstream that links its own pages (a list's
// next page, say) would otherwise hand the caller its address and the query
// values (keys) the relay adds.
func relocateLinks(h http.Header, upstream *url.URL) {
	for i, v := range h["Link"] {
		h["Link"][i] = relocateRefs(v, upstream)
	}
	for i, v := range h["Refresh"] {
		h["Refresh"][i] = relocateRefresh(v, upstream)
	}
}

// relocateRefs rewrites each "<uri>" of a Link value and the URI of each
// quoted anchor parameter (RFC 8288). A quoted string begins only where a
// parameter's value does, after "=": a stray '"' elsewhere (rel=a"b) does
// not hide the references after it.
func relocateRefs(v string, upstream *url.URL) string {
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case c == '"' && paramValueAt(v, i):
			end := i + 1
			for end < len(v) && v[end] != '"' {
				if v[end] == '\\' {
					end++
				}
				end++
			}
			if q := v[i+1 : min(end, len(v))]; end < len(v) && isAnchorValue(v, i) && !strings.Contains(q, "\\") {
				b.WriteString(`"` + relocated(q, upstream) + `"`)
			} else {
				b.WriteString(v[i:min(end+1, len(v))])
			}
			i = end
			continue
		case c == '<':
			end := strings.IndexByte(v[i:], '>')
			if end < 0 {
				b.WriteString(v[i:]) // not a reference: left as it is
				return b.String()
			}
			b.WriteByte('<')
			b.WriteString(relocated(v[i+1:i+end], upstream))
			i += end
			c = '>'
		}
		b.WriteByte(c)
	}
	return b.String()
}

// paramValueAt reports whether v[i] begins a parameter's value: what
// precedes it, blanks aside, is "=".
func paramValueAt(v string, i int) bool {
	j := strings.TrimRight(v[:i], " \t")
	return strings.HasSuffix(j, "=")
}

// isAnchorValue reports whether the value that begins at v[i] is an
// anchor parameter's.
func isAnchorValue(v string, i int) bool {
	j := strings.TrimRight(strings.TrimRight(v[:i], " \t"), "=")
	j = strings.TrimRight(j, " \t")
	return len(j) >= len("anchor") && strings.EqualFold(j[len(j)-len("anchor"):], "anchor") &&
		(len(j) == len("anchor") || strings.ContainsRune("; \t", rune(j[len(j)-len("anchor")-1])))
}

// relocateRefresh rewrites the URL of a Refresh value: a delay, then
// ";", "," or blanks, then the URL, after "url=" or not, quoted or not, as
// browsers read it.
func relocateRefresh(v string, upstream *url.URL) string {
	i := skipBlanks(v, 0)
	for i < len(v) && (v[i] >= '0' && v[i] <= '9' || v[i] == '.') {
		i++ // the delay
	}
	if j := skipBlanks(v, i); j < len(v) && (v[j] == ';' || v[j] == ',') {
		i = j + 1
	} else if j == i {
		return v // neither a separator nor a blank after the delay
	}
	i = skipBlanks(v, i)
	if len(v)-i >= 3 && strings.EqualFold(v[i:i+3], "url") {
		if j := skipBlanks(v, i+3); j < len(v) && v[j] == '=' {
			i = skipBlanks(v, j+1)
		}
	}
	end := len(v)
	if i < len(v) && (v[i] == '\'' || v[i] == '"') {
		if k := strings.IndexByte(v[i+1:], v[i]); k >= 0 {
			end = i + 1 + k
		}
		i++
	}
	if i >= end {
		return v
	}
	return v[:i] + relocated(v[i:end], upstream) + v[end:]
}

// skipBlanks returns the index of the first byte of v at or after i that
// is neither a space nor a tab.
func skipBlanks(v string, i int) int {
	for i < len(v) && (v[i] == ' ' || v[i] == '\t') {
		i++
	}
	return i
}

// relocated returns loc, a Location's value, rewritten when it points into
// upstream: an absolute URL of upstream's scheme and host, or a path from
// the root, under upstream's path. It becomes the path under the relay
// (upstream's path taken off, upstream's own query values too, wherever
// they are), so the caller comes back through the relay and never sees
// the upstream's address or the query values (keys) the relay adds. Its
// dot segments are resolved first, as the caller would resolve them. Any
// other value (elsewhere on upstream's origin, which the relay does not
// serve, or on another) keeps its address but loses upstream's query
// values too.
func relocated(loc string, upstream *url.URL) string {
	u, err := url.Parse(loc)
	if loc == "" || err != nil || u.Opaque != "" {
		return loc
	}
	q := dropPairs(u.RawQuery, upstream.RawQuery)
	into := (u.Host == "" && strings.HasPrefix(loc, "/") && !strings.HasPrefix(loc, "//")) || (u.Host != "" && sameOrigin(u, upstream))
	base := strings.TrimSuffix(upstream.EscapedPath(), "/")
	rest, ok := strings.CutPrefix(removeDots(u.EscapedPath()), base)
	if !into || !ok || (rest != "" && rest[0] != '/') {
		if q == u.RawQuery {
			return loc
		}
		// "?" keeps a Location of a query alone from becoming "",
		// which resolves to the caller's own URL, query and all.
		u.RawQuery, u.ForceQuery = q, q == "" && u.Host == "" && u.Path == ""
		return u.String()
	}
	out := "/" + strings.TrimLeft(rest, "/") // never "//host": another origin
	if q != "" {
		out += "?" + q
	}
	if u.Fragment != "" {
		out += "#" + u.EscapedFragment()
	}
	return out
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
