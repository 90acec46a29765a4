package resp

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/streamguard/streamguard/internal/redistest"
)

// TestURL: what New takes from a URL, and that its errors never hold the
// password.
func TestURL(t *testing.T) {
	for _, tc := range []struct {
		url, addr, user, password string
		db                        int
		tls                       bool
	}{
		{"redis://h", "h:6379", "", "", 0, false},
		{"redis://h:7000/3", "h:7000", "", "", 3, false},
		{"redis://:pw@h", "h:6379", "", "pw", 0, false},
		{"redis://alice:p%40ss@h/1", "h:6379", "alice", "p@ss", 1, false},
		{"redis://alice@h", "h:6379", "alice", "", 0, false},
		{"rediss://alice:pw@cache.example:6380/2", "cache.example:6380", "alice", "pw", 2, true},
		{"rediss://[::1]", "[::1]:6379", "", "", 0, true},
	} {
		c, err := New(tc.url)
		if err != nil {
			t.Errorf("%s: %v", tc.url, err)
			continue
		}
		if c.addr != tc.addr || c.user != tc.user || c.password != tc.password || c.db != tc.db || (c.tls != nil) != tc.tls {
			t.Errorf("%s: addr %q user %q password %q db %d tls %v", tc.url, c.addr, c.user, c.password, c.db, c.tls != nil)
		}
		if tc.tls && (c.tls.ServerName != strings.Trim(tc.addr[:strings.LastIndex(tc.addr, ":")], "[]") || c.tls.MinVersion == 0) {
			t.Errorf("%s: TLS config %+v", tc.url, c.tls)
		}
	}
	for _, u := range []string{"http://u:hunter2@x", "redis://u:hunter2@h:1/x", "redis://:hunter2@:6379", "redis://u:hunter2@h\x7f", "rediss://u:hunter2@[::1/", "redis://default:/hunter2@h:6379/0", "redis://default:12#hunter2@h/0", "redis:/default:hunter2@h",
		"redis://h:6379/0?password=hunter2", "redis://h:6379?db=3&x=hunter2", "redis://h:6379/0?",
		"redis://hunter2@h:1/x", "rediss://hunter2:@h/0?db=1"} { // a password written without ':' is the user name
		_, err := New(u)
		if err == nil {
			t.Errorf("%q accepted", u)
		} else if strings.Contains(err.Error(), "hunter2") {
			t.Errorf("%q: the error holds the password: %v", u, err)
		}
	}
}

// TestURLMessages: a URL refused says why: a password whose '/' or '#' ends
// the host is told to escape it, a fragment is not taken for an '@'.
func TestURLMessages(t *testing.T) {
	for u, want := range map[string]string{
		"redis://:S3cr3t/PW@h:6391/0":    "escape '/'",
		"redis://:S3cr3t#PW@h:6391/0":    "escape '/'",
		"redis://h:6391/0#frag":          "a '#' ends the URL",
		"redis://h:6391/0#":              "a '#' ends the URL",
		"redis://h:port/0":               "is not a redis://",
		"redis://:100%@h/0":              "is not a redis://",
		"redis://:p%zz@report.example/0": "is not a redis://",
	} {
		_, err := New(u)
		if err == nil || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "S3cr3t") {
			t.Errorf("%q: %v, want %q", u, err, want)
		}
	}
}

// TestTLS talks to a redis-server of the test's own over TLS, as an ACL
// user: the default user is off there, so a command succeeds only if the
// client sent "AUTH user password". A wrong password fails without the
// server's words, and a certificate from a CA the client does not trust
// fails the handshake.
func TestTLS(t *testing.T) {
	srv := redistest.StartTLS(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	dial := func(url string, trust bool) *Client {
		c, err := New(url)
		if err != nil {
			t.Fatal(err)
		}
		if trust {
			c.tls.RootCAs = srv.Roots
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	c := dial("rediss://"+srv.User+":"+srv.Password+"@"+srv.Addr+"/0", true)
	if v, err := c.Do(ctx, "SET", "streamguard:resp-tls", []byte("v\r\n"), "PX", 10000); err != nil || v != "OK" {
		t.Fatalf("SET: %v %v", v, err)
	}
	if v, err := c.Do(ctx, "GET", "streamguard:resp-tls"); err != nil || v != "v\r\n" {
		t.Fatalf("GET: %q %v", v, err)
	}
	// An idle TLS connection stays in use (the session tickets Redis
	// sends after the handshake do not make it look closed).
	id1, err1 := c.Do(ctx, "CLIENT", "ID")
	id2, err2 := c.Do(ctx, "CLIENT", "ID")
	if err1 != nil || err2 != nil || id1 != id2 {
		t.Fatalf("CLIENT ID twice: %v %v, %v %v: the pooled connection was not reused", id1, err1, id2, err2)
	}
	wrong := "wrong-" + srv.Password
	_, err := dial("rediss://"+srv.User+":"+wrong+"@"+srv.Addr, true).Do(ctx, "PING")
	if err == nil || err.Error() != "redis: AUTH failed" {
		t.Fatalf("a wrong password: %v", err)
	}
	var re Error
	if _, err := dial("rediss://"+srv.Addr, true).Do(ctx, "PING"); !errors.As(err, &re) || !strings.HasPrefix(string(re), "NOAUTH") {
		t.Fatalf("no credentials: %v", err)
	}
	if _, err := dial("rediss://"+srv.User+":"+srv.Password+"@"+srv.Addr, false).Do(ctx, "PING"); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("an untrusted certificate: %v", err)
	}
}
