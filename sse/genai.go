package sse

import (
	"bytes"
	"encoding/json"
	"slices"
	"time"

	"github.com/streamguard/streamguard/internal/redact"
	"github.com/streamguard/streamguard/internal/streamstat"
)

// The GenAI facts of a model call (streamstat.GenAI: response id and model,
// finish reasons, token usage, chunk timing) are read from the few events
// that carry them, never on the path of every event:
//
//   - OpenAI chat: the id and model from the first chunk, which the guard
//     judges anyway (the fast path is off until the dialect is known); the
//     finish reasons and the usage chunk (stream_options.include_usage) from
//     the last events of each read. After a read is framed, genTail walks
//     back from its last whole event over the events that carry a
//     "finish_reason" string or a "usage" object (and [DONE]), and stops at
//     the first that does not: one short backward scan per read, none per
//     event. A finish chunk followed in the same read by a content chunk
//     (n > 1 choices, interleaved) is not seen.
//   - Anthropic: message_start (id, model, input tokens) and message_delta
//     (stop reason, output tokens), typed events judgeBuiltin names anyway.
//   - Responses: response.created (id, model) and the terminal event
//     (status, usage).
//
// Only those events are decoded, with encoding/json into small structs: a
// few allocations per stream, none per event.

// genState is what the guard gathers for streamstat.GenAI.
type genState struct {
	on    bool             // an event stream judged by the built-in dialects: gather
	first bool             // the first OpenAI chunk was read
	info  streamstat.GenAI // written by the reading goroutine under statMu
}

// maxTailLines bounds genTail's walk back over one read's lines.
const maxTailLines = 32

// genStats returns a copy of what was gathered, or nil; statMu is held.
func (b *body) genStats() *streamstat.GenAI {
	if !b.gen.on || b.gen.info.Dialect == "" {
		return nil
	}
	g := b.gen.info
	if ns := b.statFirst.Load(); ns != 0 {
		g.FirstChunk = time.Unix(0, ns)
	}
	// A server's own words, which go onto spans and metrics: scrubbed of
	// the request's secrets and key shapes, as its error messages are (a
	// server that echoes the key as the model's name).
	secrets := redact.Secrets(b.req)
	g.ResponseID = redact.Scrub(g.ResponseID, secrets)
	g.ResponseModel = redact.Scrub(g.ResponseModel, secrets)
	g.FinishReasons = slices.Clone(g.FinishReasons)
	for i, r := range g.FinishReasons {
		g.FinishReasons[i] = redact.Scrub(r, secrets)
	}
	return &g
}

// genUpdate runs f on the gathered facts under statMu, naming the dialect.
func (b *body) genUpdate(f func(g *streamstat.GenAI)) {
	b.statMu.Lock()
	defer b.statMu.Unlock()
	g := &b.gen.info
	if g.Dialect == "" {
		g.InputTokens, g.OutputTokens = -1, -1
	}
	switch b.dialect {
	case dialectOpenAI:
		g.Dialect = OpenAI.Name
	case dialectResponses:
		g.Dialect = Responses.Name
	case dialectAnthropic:
		g.Dialect = Anthropic.Name
	}
	f(g)
}

// genTerminal records the terminal event's time and the chunks so far.
func (b *body) genTerminal() {
	if b.gen.info.LastChunk.IsZero() && b.dialect != 0 {
		now, n := time.Now(), b.events
		b.genUpdate(func(g *streamstat.GenAI) { g.LastChunk, g.Chunks = now, n })
	}
}

// genEvent reads the GenAI facts of an event judgeBuiltin judged: the first
// OpenAI chunk, and the Anthropic and Responses events that carry them. t is
// the event's type.
func (b *body) genEvent(t, data []byte) {
	switch {
	case b.dialect == dialectOpenAI && !b.gen.first && len(data) > 0 && data[0] == '{':
		b.gen.first = true
		b.genOpenAI(data, false, false) // its finish reason or usage, if any, is genTail's
	case b.dialect == dialectAnthropic && (string(t) == "message_start" || string(t) == "message_delta"):
		b.genAnthropic(data)
	case b.dialect == dialectResponses && (string(t) == "response.created" || isResponsesEnd(t)):
		b.genResponses(data, string(t) != "response.created")
	}
}

func isResponsesEnd(t []byte) bool {
	switch string(t) {
	case "response.completed", "response.incomplete", "response.failed":
		return true
	}
	return false
}

// genTail walks back over the last events of win[:n], a read's whole
// events, and decodes those that carry an OpenAI finish reason; of those
// that carry usage, the last one's counts are read (a server that sends
// usage on every chunk, vLLM's continuous_usage_stats, counts up), by a
// scan for its two numbers, so that such a stream costs no allocation per
// event.
func (b *body) genTail(win []byte) {
	end := len(win)
	usage := false // the read's last usage is read
	for range maxTailLines {
		e := end
		for e > 0 && (win[e-1] == '\n' || win[e-1] == '\r') {
			e--
		}
		if e == 0 {
			return
		}
		s := bytes.LastIndexByte(win[:e], '\n') + 1
		line := win[s:e]
		end = s
		if len(line) < 5 || string(line[:5]) != "data:" {
			continue // event:, id:, a comment: not the data
		}
		v := line[5:]
		if len(v) > 0 && v[0] == ' ' {
			v = v[1:]
		}
		if bytes.Equal(v, done) {
			continue
		}
		finish, hasUsage := hasValue(v, `"finish_reason"`, '"'), hasValue(v, `"usage"`, '{')
		switch {
		case finish:
			b.genOpenAI(v, true, !usage)
		case !hasUsage:
			return
		case !usage:
			b.genUsage(v)
		}
		usage = usage || hasUsage
	}
}

// genUsage reads the prompt and completion tokens of a chunk's usage
// object (from its "usage" on: another object's counts before it are not
// its).
func (b *body) genUsage(data []byte) {
	data = objectOf(data, `"usage"`)
	if data == nil {
		return
	}
	in, okIn := intValue(data, `"prompt_tokens"`)
	out, okOut := intValue(data, `"completion_tokens"`)
	if !okIn && !okOut {
		return
	}
	b.genUpdate(func(g *streamstat.GenAI) {
		if okIn {
			g.InputTokens = in
		}
		if okOut {
			g.OutputTokens = out
		}
	})
}

// objectOf returns the object that is key's value in data (the first
// key followed by a colon and a brace: not a string that says it), from
// its brace to its matching one, or nil.
func objectOf(data []byte, key string) []byte {
	for off := 0; off < len(data); {
		i := bytes.Index(data[off:], []byte(key))
		if i < 0 {
			return nil
		}
		off += i + len(key)
		j := skipSpace(data, off)
		if j >= len(data) || data[j] != ':' {
			continue
		}
		if j = skipSpace(data, j+1); j >= len(data) || data[j] != '{' {
			continue
		}
		depth, inStr, esc := 0, false, false
		for k := j; k < len(data); k++ {
			c := data[k]
			switch {
			case esc:
				esc = false
			case inStr:
				esc, inStr = c == '\\', c != '"'
			case c == '"':
				inStr = true
			case c == '{':
				depth++
			case c == '}':
				if depth--; depth == 0 {
					return data[j : k+1]
				}
			}
		}
		return nil
	}
	return nil
}

// intValue returns the non-negative integer after key and a colon in
// data, a whole number (followed by a comma, a brace or a space, not a
// fraction). Raw quotes around key cannot be inside a JSON string, whose
// quotes are escaped.
func intValue(data []byte, key string) (int64, bool) {
	i := bytes.Index(data, []byte(key))
	if i < 0 {
		return 0, false
	}
	j := skipSpace(data, i+len(key))
	if j >= len(data) || data[j] != ':' {
		return 0, false
	}
	j = skipSpace(data, j+1)
	k := j
	for k < len(data) && data[k] >= '0' && data[k] <= '9' {
		k++
	}
	if k >= len(data) || (data[k] != ',' && data[k] != '}' && data[k] != ' ' && data[k] != '\t' && data[k] != '\r' && data[k] != '\n') {
		return 0, false
	}
	n, ok := parseSeq(data[j:k])
	return int64(n), ok
}

// hasValue reports whether data holds key followed by a colon and a value
// starting with c, as `"usage":{` or `"finish_reason": "`.
func hasValue(data []byte, key string, c byte) bool {
	for {
		i := bytes.Index(data, []byte(key))
		if i < 0 {
			return false
		}
		data = data[i+len(key):]
		j := skipSpace(data, 0)
		if j < len(data) && data[j] == ':' {
			if j = skipSpace(data, j+1); j < len(data) && data[j] == c {
				return true
			}
		}
	}
}

// openaiChunk is what genOpenAI reads of a chat-completion chunk.
type openaiChunk struct {
	ID      string `json:"id"`
	Model   string `json:"model"`
	Choices []struct {
		FinishReason *string `json:"finish_reason"`
	} `json:"choices"`
	Usage *struct {
		PromptTokens     *int64 `json:"prompt_tokens"`
		CompletionTokens *int64 `json:"completion_tokens"`
	} `json:"usage"`
}

// genOpenAI reads a chunk's id and model and, when all is set, its finish
// reasons, and its usage when usage is set too.
func (b *body) genOpenAI(data []byte, all, usage bool) {
	var c openaiChunk
	var err error
	if all {
		err = json.Unmarshal(data, &c)
	} else {
		var first struct{ ID, Model string } // fewer allocations than the whole chunk
		err = json.Unmarshal(data, &first)
		c.ID, c.Model = first.ID, first.Model
	}
	if err != nil {
		return
	}
	b.genUpdate(func(g *streamstat.GenAI) {
		setOnce(&g.ResponseID, c.ID)
		setOnce(&g.ResponseModel, c.Model)
		if !all {
			return
		}
		for _, ch := range c.Choices {
			if ch.FinishReason != nil && *ch.FinishReason != "" {
				addReason(g, *ch.FinishReason)
			}
		}
		if c.Usage != nil && usage {
			setTokens(&g.InputTokens, c.Usage.PromptTokens)
			setTokens(&g.OutputTokens, c.Usage.CompletionTokens)
		}
	})
}

// anthropicEvent is what genAnthropic reads of message_start and
// message_delta.
type anthropicEvent struct {
	Message *struct {
		ID    string          `json:"id"`
		Model string          `json:"model"`
		Usage *anthropicUsage `json:"usage"`
	} `json:"message"`
	Delta *struct {
		StopReason *string `json:"stop_reason"`
	} `json:"delta"`
	Usage *anthropicUsage `json:"usage"`
}

type anthropicUsage struct {
	InputTokens  *int64 `json:"input_tokens"`
	OutputTokens *int64 `json:"output_tokens"`
}

func (b *body) genAnthropic(data []byte) {
	var e anthropicEvent
	if json.Unmarshal(data, &e) != nil {
		return
	}
	b.genUpdate(func(g *streamstat.GenAI) {
		if m := e.Message; m != nil {
			setOnce(&g.ResponseID, m.ID)
			setOnce(&g.ResponseModel, m.Model)
			if m.Usage != nil {
				setTokens(&g.InputTokens, m.Usage.InputTokens)
				setTokens(&g.OutputTokens, m.Usage.OutputTokens)
			}
		}
		if e.Delta != nil && e.Delta.StopReason != nil && *e.Delta.StopReason != "" {
			addReason(g, *e.Delta.StopReason)
		}
		if u := e.Usage; u != nil {
			// message_delta's counts are cumulative: they replace
			// message_start's.
			setTokens(&g.InputTokens, u.InputTokens)
			setTokens(&g.OutputTokens, u.OutputTokens)
		}
	})
}

// responsesEvent is what genResponses reads of response.created and the
// terminal events.
type responsesEvent struct {
	Response *struct {
		ID                string `json:"id"`
		Model             string `json:"model"`
		Status            string `json:"status"`
		IncompleteDetails *struct {
			Reason string `json:"reason"`
		} `json:"incomplete_details"`
		Usage *struct {
			InputTokens  *int64 `json:"input_tokens"`
			OutputTokens *int64 `json:"output_tokens"`
		} `json:"usage"`
	} `json:"response"`
}

// genResponses reads a Responses event; end says it is the terminal one,
// whose status (or, when incomplete, the reason) is the finish reason.
func (b *body) genResponses(data []byte, end bool) {
	var e responsesEvent
	if json.Unmarshal(data, &e) != nil || e.Response == nil {
		return
	}
	r := e.Response
	b.genUpdate(func(g *streamstat.GenAI) {
		setOnce(&g.ResponseID, r.ID)
		setOnce(&g.ResponseModel, r.Model)
		if !end {
			return
		}
		switch {
		case r.IncompleteDetails != nil && r.IncompleteDetails.Reason != "":
			addReason(g, r.IncompleteDetails.Reason)
		case r.Status != "":
			addReason(g, r.Status)
		}
		if r.Usage != nil {
			setTokens(&g.InputTokens, r.Usage.InputTokens)
			setTokens(&g.OutputTokens, r.Usage.OutputTokens)
		}
	})
}

// setOnce sets *dst to v, capped, unless it is set or v is empty.
func setOnce(dst *string, v string) {
	if *dst == "" && v != "" {
		*dst = streamstat.CapField(v)
	}
}

func setTokens(dst *int64, v *int64) {
	if v != nil && *v >= 0 {
		*dst = *v
	}
}

func addReason(g *streamstat.GenAI, r string) {
	if len(g.FinishReasons) < streamstat.MaxFinishReasons {
		g.FinishReasons = append(g.FinishReasons, streamstat.CapField(r))
	}
}
