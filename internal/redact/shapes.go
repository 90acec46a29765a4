package redact

import "strings"

// schemes are the auth schemes whose following token is a credential,
// matched case-insensitively and followed by spaces: "Bearer sk-...",
// "Api-Key ...", "Basic dXNlcjpw...".
var schemes = []string{"bearer", "basic", "api-key", "token"}

// keyPrefix starts the API keys of OpenAI ("sk-", "sk-proj-"), Anthropic
// ("sk-ant-") and the many servers that copy them.
const keyPrefix = "sk-"

// Shapes returns s with the well-known shapes of a credential replaced by
// Marker: a token that starts with "sk-", and the token after an auth
// scheme (Bearer, Basic, Api-Key, Token). A token is a run of letters,
// digits and "-._~+/="; it counts only from minShape characters on, so that
// prose such as "a Bearer token" stays. s itself comes back, with no
// allocation, when it holds no such shape.
func Shapes(s string) string {
	if !hasShape(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); {
		if start, end := shapeAt(s, i); end > start {
			b.WriteString(s[i:start])
			b.WriteString(Marker)
			i = end
			continue
		}
		b.WriteByte(s[i])
		i++
	}
	return b.String()
}

// hasShape is the cheap test Shapes starts with.
func hasShape(s string) bool {
	for i := range len(s) {
		if start, end := shapeAt(s, i); end > start {
			return true
		}
	}
	return false
}

// shapeAt reports the credential token of a shape that begins at s[i], as
// s[start:end]; start == end when none does.
func shapeAt(s string, i int) (start, end int) {
	if i > 0 && isWordByte(s[i-1]) {
		return i, i // not at a word's start ("=sk-..." and "/sk-..." are)
	}
	if strings.HasPrefix(s[i:], keyPrefix) {
		end = tokenEnd(s, i+len(keyPrefix))
		if end-(i+len(keyPrefix)) >= minShape {
			return i, end
		}
		return i, i
	}
	for _, sc := range schemes {
		if len(s)-i <= len(sc) || !strings.EqualFold(s[i:i+len(sc)], sc) || s[i+len(sc)] != ' ' {
			continue
		}
		start = i + len(sc)
		for start < len(s) && s[start] == ' ' {
			start++
		}
		end = tokenEnd(s, start)
		if end-start >= minShape {
			return start, end
		}
	}
	return i, i
}

// tokenEnd returns the end of the token that starts at s[i]; a final "."
// ends the sentence, not the token.
func tokenEnd(s string, i int) int {
	start := i
	for i < len(s) && isTokenByte(s[i]) {
		i++
	}
	for i > start && s[i-1] == '.' {
		i--
	}
	return i
}

// isWordByte reports whether c continues a word: a letter, a digit, '-' or
// '_' ("risk-free" holds no key).
func isWordByte(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return c == '-' || c == '_'
}

func isTokenByte(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return c == '-' || c == '_' || c == '.' || c == '~' || c == '+' || c == '/' || c == '='
}
