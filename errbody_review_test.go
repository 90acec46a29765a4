package streamguard_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/streamguard/streamguard"
)

// keyRequest returns a request that carries key as its Api-Key.
func keyRequest(key string) *http.Request {
	req, _ := http.NewRequest(http.MethodPost, "https://model.example/v1/chat/completions", nil)
	req.Header.Set("Authorization", "Api-Key "+key)
	return req
}

const reviewKey = "Zq8x7Lm2Np4Rt6Vw9Yb1Qs3Ue5Hk"

// TestHTMLPageNotUTF8: an HTML error page in another encoding, or with
// characters whose lower case is of another length, is read without a
// panic (bytes.ToLower's offsets differed from the page's), its title
// found.
func TestHTMLPageNotUTF8(t *testing.T) {
	for _, page := range []string{
		"<title>\xd1\xe5\xf0\xe2\xe8\xf1 \xed\xe5\xe4\xee\xf1\xf2\xf3\xef\xe5\xed</title>", // windows-1251
		"<title>" + strings.Repeat("\xff", 3000) + "</title>",
		"<TITLE>\u212a\u212a\u212a down</TITLE><h1>x</h1>", // the Kelvin sign: 3 bytes, k in lower case
		"<title>\u023a\u023a\u023a down</title>",           // 2 bytes, 3 in lower case
	} {
		resp := &http.Response{StatusCode: 503, Header: http.Header{"Content-Type": {"text/html"}}}
		e := streamguard.Classify(resp, []byte(page))
		if e == nil || e.Reason != streamguard.ReasonUnavailable {
			t.Errorf("%.30q: %v, want the platform's unavailability", page, e)
		}
	}
	resp := &http.Response{StatusCode: 503, Header: http.Header{"Content-Type": {"text/html"}}}
	if e := streamguard.Classify(resp, []byte("<TITLE>\u212a down</TITLE>")); e.Message != "\u212a down" {
		t.Errorf("title %q, want %q", e.Message, "\u212a down")
	}
}

// TestHTMLKeyAtTheCut: a page's text is scrubbed before the message is
// cut, so that a key the cut would have split leaves nothing of itself.
func TestHTMLKeyAtTheCut(t *testing.T) {
	body := "<html><body><p>" + strings.Repeat("a ", 245) + "invalid key " + reviewKey + "</p></body></html>"
	resp := &http.Response{StatusCode: 401, Header: http.Header{"Content-Type": {"text/html"}}, Request: keyRequest(reviewKey)}
	e := streamguard.Classify(resp, []byte(body))
	if strings.Contains(e.Message, reviewKey[:6]) || len(e.Message) > streamguard.MaxMessage {
		t.Errorf("message %q (%d bytes): a part of the key, or over MaxMessage", e.Message, len(e.Message))
	}
}
