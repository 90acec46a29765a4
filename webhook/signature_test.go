package webhook_test

import (
	"strings"
	"testing"

	"github.com/streamguard/streamguard/webhook"
)

// RFC 4231, test case 2: HMAC-SHA256 of "what do ya want for nothing?" under
// the key "Jefe".
func TestSignKnownVector(t *testing.T) {
	got := webhook.Sign([]byte("what do ya want for nothing?"), "Jefe")
	want := "v1=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
	if got != want {
		t.Fatalf("Sign = %s, want %s", got, want)
	}
}

func TestVerify(t *testing.T) {
	body := []byte(`{"request_id":"r1","errors":[]}`)
	good := webhook.Sign(body, "new")
	old := webhook.Sign(body, "old")
	other := webhook.Sign(body, "other")
	upper := "v1=" + strings.ToUpper(strings.TrimPrefix(good, "v1="))
	cases := []struct {
		name    string
		header  string
		body    []byte
		secrets []string
		want    bool
	}{
		{"valid", good, body, []string{"new"}, true},
		{"valid, hex in upper case", upper, body, []string{"new"}, true},
		{"valid with spaces", "  " + good + " ", body, []string{"new"}, true},
		{"invalid", other, body, []string{"new"}, false},
		{"missing", "", body, []string{"new"}, false},
		{"tampered body", good, []byte(`{"request_id":"r2","errors":[]}`), []string{"new"}, false},
		{"rotated: old secret", old, body, []string{"old", "new"}, true},
		{"rotated: new secret", good, body, []string{"old", "new"}, true},
		{"rotated: neither", other, body, []string{"old", "new"}, false},
		{"several entries, last valid", other + "," + good, body, []string{"new"}, true},
		{"several entries, first valid", good + ", " + other, body, []string{"new"}, true},
		{"several entries, none valid", other + "," + old, body, []string{"new"}, false},
		{"old and new entries, new secret only", old + "," + good, body, []string{"new"}, true},
		{"wrong version", "v0=" + strings.TrimPrefix(good, "v1="), body, []string{"new"}, false},
		{"no version", strings.TrimPrefix(good, "v1="), body, []string{"new"}, false},
		{"not hex", "v1=" + strings.Repeat("zz", 32), body, []string{"new"}, false},
		{"short", good[:len(good)-2], body, []string{"new"}, false},
		{"long", good + "00", body, []string{"new"}, false},
		{"empty secret never matches", webhook.Sign(body, ""), body, []string{""}, false},
		{"no secrets", good, body, nil, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := webhook.Verify(c.header, c.body, c.secrets...); got != c.want {
				t.Fatalf("Verify = %v, want %v", got, c.want)
			}
		})
	}
}

// Only the first 8 v1 entries are checked: a header stuffed with entries
// cannot buy comparisons.
func TestVerifyBoundsEntries(t *testing.T) {
	body := []byte(`{}`)
	junk := webhook.Sign(body, "junk")
	entries := make([]string, 0, 9)
	for range 8 {
		entries = append(entries, junk)
	}
	header := strings.Join(append(entries, webhook.Sign(body, "s")), ",")
	if webhook.Verify(header, body, "s") {
		t.Fatal("the ninth entry was checked")
	}
	header = strings.Join(append(entries[:7], webhook.Sign(body, "s")), ",")
	if !webhook.Verify(header, body, "s") {
		t.Fatal("the eighth entry was not checked")
	}
}
