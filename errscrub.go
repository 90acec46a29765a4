package streamguard

import (
	"bytes"
	"encoding/json"
	"strconv"

	"github.com/streamguard/streamguard/internal/redact"
)

// scrubJSON returns the JSON document raw with the secrets (and the
// well-known key shapes) replaced in its decoded strings, object keys and
// numbers, re-encoded, and whether it changed anything; raw itself when
// nothing was to be replaced. A scrub of the encoded text would miss a key
// a server escaped (\u002B for '+', as .NET writes it; a key right after
// a "\n"), and could replace a literal (a cookie value "true") and break
// the document. A document that does not decode is not one: nil, false.
func scrubJSON(raw []byte, secrets []string) ([]byte, bool) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if dec.Decode(&v) != nil {
		return nil, false
	}
	v, changed := scrubValue(v, secrets)
	if !changed && redact.Scrub(string(raw), secrets) == string(raw) {
		return raw, false
	}
	// Encoded again when a secret was in the text but in no decoded value
	// too: in a duplicate key's value, which the decoding dropped.
	var out bytes.Buffer
	enc := json.NewEncoder(&out)
	enc.SetEscapeHTML(false)
	if enc.Encode(v) != nil {
		return nil, false
	}
	return bytes.TrimSuffix(out.Bytes(), []byte("\n")), true
}

// scrubValue scrubs a decoded JSON value (see scrubJSON).
func scrubValue(v any, secrets []string) (any, bool) {
	switch x := v.(type) {
	case string:
		s := redact.Scrub(x, secrets)
		return s, s != x
	case json.Number:
		if s := redact.Scrub(string(x), secrets); s != string(x) {
			return s, true // a secret of digits: a string now
		}
	case []any:
		changed := false
		for i, e := range x {
			var c bool
			x[i], c = scrubValue(e, secrets)
			changed = changed || c
		}
		return x, changed
	case map[string]any:
		out := make(map[string]any, len(x))
		changed := false
		for k, e := range x {
			e, c := scrubValue(e, secrets)
			if sk := redact.Scrub(k, secrets); sk != k {
				k, c = sk, true
				for i := 2; taken(out, k) || taken(x, k); i++ {
					k = sk + "_" + strconv.Itoa(i) // another key of the same name kept
				}
			}
			out[k] = e
			changed = changed || c
		}
		return out, changed
	}
	return v, false
}

// taken reports whether m has the key k.
func taken(m map[string]any, k string) bool {
	_, ok := m[k]
	return ok
}
