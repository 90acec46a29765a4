package sse

import (
	"bytes"
	"unicode/utf8"

	"github.com/streamguard/streamguard"
	"github.com/streamguard/streamguard/internal/redact"
)

// plainEvent reports whether a one-line data event whose value is v can be
// counted without judging it: the dialect is known (or no longer searched
// for) and v is a JSON object
// whose first key cannot be "error", "object" or "type", the keys the
// built-in dialects look at. An OpenAI chunk, {"id": ...}, is such an event.
func (b *body) plainEvent(v []byte) bool {
	return b.fast && len(v) > 2 && v[0] == '{' && v[1] == '"' && v[2] != 'e' && v[2] != 'o' && v[2] != 't'
}

// joinData returns the event's data lines joined by "\n", in a buffer the
// guard reuses.
func (b *body) joinData(block []byte) []byte {
	b.scratch = b.scratch[:0]
	var q parser
	n := 0
	for rest := block; len(rest) > 0; {
		end := len(rest)
		next := end
		for i, c := range rest {
			if c == '\n' || c == '\r' {
				end, next = i, i+1
				if c == '\r' && i+1 < len(rest) && rest[i+1] == '\n' {
					next++
				}
				break
			}
		}
		q.dataN = 0
		q.field(rest, 0, end)
		if q.dataN > 0 {
			if n > 0 {
				b.scratch = append(b.scratch, '\n')
			}
			b.scratch = append(b.scratch, rest[q.dataS:q.dataE]...)
			n++
		}
		rest = rest[next:]
	}
	return b.scratch
}

// judgeBuiltin applies the built-in dialects with no function calls through
// values: the common case, on the path of every event.
func (b *body) judgeBuiltin(typ, data []byte) {
	t := b.judgeBuiltinType(typ, data)
	if b.gen.on && b.dialect != 0 {
		b.genEvent(t, data)
	}
}

// judgeBuiltinType is judgeBuiltin's judgement; it returns the event's type,
// for genEvent.
func (b *body) judgeBuiltinType(typ, data []byte) []byte {
	t := typ
	if len(data) > 0 {
		switch data[0] {
		case '[':
			if openaiTerminal(nil, data) {
				b.sawTerminal(dialectOpenAI)
			}
			return nil
		case '{':
			key, rest := firstKey(data)
			switch string(key) {
			case "error":
				if isErrorValue(rest) {
					b.sawError(data)
					return nil
				}
			case "object":
				if v, _ := stringValue(rest); string(v) == "error" {
					b.sawError(data)
					return nil
				}
			case "type":
				if t == nil {
					t, _ = stringValue(rest)
				}
			}
			if b.dialect == 0 && t == nil && b.events <= detectEvents && openaiDetect(nil, data) {
				b.dialect = dialectOpenAI
			}
		}
	}
	switch string(t) {
	case "":
	case "error":
		b.sawError(data)
	case "response.completed", "response.incomplete":
		b.sawTerminal(dialectResponses)
	case "response.failed":
		b.sawError(data)
		b.sawTerminal(dialectResponses)
	case "message_stop":
		b.sawTerminal(dialectAnthropic)
	case "message_start", "content_block_start", "content_block_delta", "content_block_stop", "message_delta":
		// Not "ping", which Anthropic sends but so do other servers'
		// keepalives (sse-starlette's): it says nothing of the dialect.
		if b.dialect == 0 {
			b.dialect = dialectAnthropic
		}
	default:
		if b.dialect == 0 && bytes.HasPrefix(t, []byte("response.")) {
			b.dialect = dialectResponses
		}
	}
	return t
}

// judge applies the configured dialects.
func (b *body) judge(typ, data []byte) {
	for i, d := range b.cfg.Dialects {
		if d.Error != nil && d.Error(typ, data) {
			b.sawError(data)
		}
		if d.Terminal != nil && d.Terminal(typ, data) {
			b.sawTerminal(i + 1)
		}
		if b.dialect == 0 && b.events <= detectEvents && d.Detect != nil && d.Detect(typ, data) {
			b.dialect = i + 1
		}
	}
}

func (b *body) sawTerminal(dialect int) {
	b.terminal = true
	if b.dialect == 0 {
		b.dialect = dialect
	}
	b.statDialect.Store(int32(b.dialect))
	b.statTerminal.Store(true)
	if b.gen.on {
		b.genTerminal()
	}
}

func (b *body) sawError(data []byte) {
	b.errEvent = true
	if b.inband == nil {
		// The model may echo the key it was called with: it goes before
		// the event is read and its message cut (a key the cut split
		// would no longer match).
		secrets := redact.Secrets(b.req)
		if len(secrets) > 0 {
			data = []byte(redact.Scrub(string(data), secrets))
		}
		e := streamguard.ClassifyEvent(data)
		if len(secrets) > 0 {
			// And after it is decoded: a key the server JSON-escaped
			// (\u002B for '+') matched nothing above.
			e.Message = scrubDecoded(e.Message, secrets, streamguard.MaxMessage)
			e.Code = scrubDecoded(e.Code, secrets, 128)
		}
		b.inband = e
	}
}

// maskError masks, in place, the request's secrets and key shapes in the
// bytes of an error event once it is judged (see redact.Mask): they are
// passed on, and a relay must not hand its own key to its caller. raw is
// the event's bytes in the guard's buffer or the consumer's, as delivered.
func (b *body) maskError(raw []byte) {
	b.errEvent = false
	redact.Mask(raw, redact.Secrets(b.req))
}

// scrubDecoded scrubs secrets from s, a decoded field cut to at most max
// bytes: when it may have been cut, the start of a secret at its end goes
// too.
func scrubDecoded(s string, secrets []string, max int) string {
	s = redact.Scrub(s, secrets)
	if len(s) >= max-utf8.UTFMax {
		s = string(redact.DropCut([]byte(s), secrets))
	}
	return s
}
