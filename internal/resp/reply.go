package resp

import (
	"bufio"
	"errors"
	"io"
	"strconv"
)

var errTooLarge = errors.New("redis: reply too large")

// isReply reports whether err is the server's error reply.
func isReply(err error) bool {
	_, ok := err.(Error)
	return ok
}

// reply reads one reply. What it allocates grows with the bytes that
// arrive, not with the lengths the server announces: a broken or hostile
// server's few bytes of header cost little.
func (cn *conn) reply(depth int) (any, error) {
	line, err := cn.line()
	if err != nil {
		return nil, err
	}
	if cn.left -= len(line) + valueCost; cn.left < 0 {
		return nil, errTooLarge
	}
	if len(line) < 3 || line[len(line)-2] != '\r' {
		return nil, errors.New("redis: malformed reply")
	}
	kind, body := line[0], line[1:len(line)-2]
	switch kind {
	case '+':
		return string(body), nil
	case '-':
		return nil, Error(body)
	case ':':
		return strconv.ParseInt(string(body), 10, 64)
	case '$':
		n, err := strconv.Atoi(string(body))
		if err != nil || n < -1 || n > maxBulk {
			return nil, errors.New("redis: bad bulk length")
		}
		if n == -1 {
			return nil, nil
		}
		if cn.left -= n + 2; cn.left < 0 {
			return nil, errTooLarge
		}
		b, err := cn.bulk(n + 2)
		if err != nil {
			return nil, err
		}
		if b[n] != '\r' || b[n+1] != '\n' {
			return nil, errors.New("redis: malformed bulk")
		}
		return string(b[:n]), nil
	case '*':
		n, err := strconv.Atoi(string(body))
		if err != nil || n < -1 || n > maxArray || depth >= maxDepth {
			return nil, errors.New("redis: bad array")
		}
		if n == -1 {
			return nil, nil
		}
		arr := make([]any, 0, min(n, 1024))
		for range n {
			v, err := cn.reply(depth + 1)
			if err != nil {
				var re Error
				if !errors.As(err, &re) {
					return nil, err
				}
				v = err
			}
			arr = append(arr, v)
		}
		return arr, nil
	}
	return nil, errors.New("redis: unknown reply type")
}

// line reads one line of a reply, CRLF included: a line longer than the
// reader's buffer (a long error reply of a script) is put together, up to
// maxLine.
func (cn *conn) line() ([]byte, error) {
	line, err := cn.r.ReadSlice('\n')
	if err != bufio.ErrBufferFull {
		return line, err
	}
	long := append([]byte(nil), line...)
	for err == bufio.ErrBufferFull && len(long) <= maxLine {
		line, err = cn.r.ReadSlice('\n')
		long = append(long, line...)
	}
	if err == bufio.ErrBufferFull {
		return nil, errors.New("redis: reply line too long")
	}
	return long, err
}

// bulk reads n bytes: at once when they are few, else in pieces as they
// come, so that memory follows the bytes received.
func (cn *conn) bulk(n int) ([]byte, error) {
	b := make([]byte, min(n, 64<<10))
	for k := 0; ; {
		m, err := io.ReadFull(cn.r, b[k:])
		if k += m; err != nil {
			return nil, err
		}
		if k == n {
			return b, nil
		}
		b = append(b, make([]byte, min(n-k, len(b)))...)
	}
}
