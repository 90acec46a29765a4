package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"strings"
)

// SignatureHeader is the header that carries a webhook's signatures:
// "v1=<hex HMAC-SHA256 of the raw body>", keyed with the webhook secret. The
// platform writes it X-BASETEN-SIGNATURE; header names match
// case-insensitively.
const SignatureHeader = "X-Baseten-Signature"

// signaturePrefix marks a version 1 signature in SignatureHeader.
const signaturePrefix = "v1="

// maxSignatures bounds how many v1 entries of one header are checked: a
// rotation needs two; a header with thousands must not cost thousands of
// comparisons.
const maxSignatures = 8

// Sign returns the SignatureHeader value for body under secret:
// "v1=" and the hex HMAC-SHA256 of body. It is what the platform sends, and
// what a test of a receiver needs to send. During a rotation the platform
// signs with both secrets; join the values with a comma.
func Sign(body []byte, secret string) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	return signaturePrefix + hex.EncodeToString(mac.Sum(nil))
}

// Verify reports whether signature, the value of SignatureHeader (several
// header lines may be joined with commas), carries a v1 signature of body
// under any of secrets. Entries of another version, or that are not 64 hex
// digits, are ignored; at most the first 8 v1 entries are checked. Empty
// secrets never match: anyone can compute an HMAC under an empty key. The
// comparison is constant-time (hmac.Equal).
func Verify(signature string, body []byte, secrets ...string) bool {
	sigs := parseSignatures(signature)
	if len(sigs) == 0 {
		return false
	}
	return verify(body, sigs, keys(secrets))
}

// keys returns the non-empty secrets as HMAC keys.
func keys(secrets []string) [][]byte {
	out := make([][]byte, 0, len(secrets))
	for _, s := range secrets {
		if s != "" {
			out = append(out, []byte(s))
		}
	}
	return out
}

// parseSignatures returns the decoded v1 entries of a SignatureHeader value,
// at most maxSignatures of them.
func parseSignatures(header string) [][]byte {
	var sigs [][]byte
	for entry := range strings.SplitSeq(header, ",") {
		entry = strings.TrimSpace(entry)
		hexSig, ok := strings.CutPrefix(entry, signaturePrefix)
		if !ok || len(hexSig) != 2*sha256.Size {
			continue
		}
		sig, err := hex.DecodeString(hexSig)
		if err != nil {
			continue
		}
		if sigs = append(sigs, sig); len(sigs) == maxSignatures {
			break
		}
	}
	return sigs
}

// verify reports whether any of sigs is the HMAC-SHA256 of body under any of
// keys. Every pair is compared, so the time taken does not depend on which
// one matched.
func verify(body []byte, sigs, keys [][]byte) bool {
	ok := false
	for _, key := range keys {
		mac := hmac.New(sha256.New, key)
		mac.Write(body)
		sum := mac.Sum(nil)
		for _, sig := range sigs {
			if hmac.Equal(sum, sig) {
				ok = true
			}
		}
	}
	return ok
}
