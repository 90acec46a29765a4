package resume_test

import (
	"net/http"
	"testing"

	"github.com/streamguard/streamguard/resume"
)

// TestOwnerHashAuthScheme: the same credential with its auth scheme in
// another case, or more spaces after it, is the same owner; another
// credential, or another scheme, is not.
func TestOwnerHashAuthScheme(t *testing.T) {
	key := []byte("k")
	hash := func(auth string) []byte {
		r, _ := http.NewRequest(http.MethodGet, "http://relay.example/v1/chat", nil)
		r.Header.Set("Authorization", auth)
		return resume.OwnerHash(key, r, nil)
	}
	owner := hash("Bearer sk-abc123")
	for auth, same := range map[string]bool{
		"bearer sk-abc123":  true,
		"BEARER  sk-abc123": true,
		"Bearer sk-abc124":  false,
		"Bearer SK-ABC123":  false,
		"Basic sk-abc123":   false,
	} {
		if got := resume.SameOwner(owner, hash(auth)); got != same {
			t.Errorf("%q: same owner %v, want %v", auth, got, same)
		}
	}
}
