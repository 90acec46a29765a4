package redact

import "errors"

// Error returns err with its text replaced by text, a scrubbed copy of it.
// The result does not unwrap to err, whose text still holds what was
// removed, but errors.Is still finds what err's chain holds
// (context.DeadlineExceeded, io.ErrUnexpectedEOF, a syscall.Errno), and it
// is a net.Error whose Timeout is err's, so a caller's checks of the cause
// keep working when its text had to be scrubbed.
func Error(err error, text string) error {
	return &scrubbed{text: text, err: err}
}

type scrubbed struct {
	text string
	err  error
}

func (e *scrubbed) Error() string { return e.text }

// Is reports whether err's chain holds target.
func (e *scrubbed) Is(target error) bool { return errors.Is(e.err, target) }

// Timeout reports whether err is a timeout, as net.Error has it.
func (e *scrubbed) Timeout() bool {
	var t interface{ Timeout() bool }
	return errors.As(e.err, &t) && t.Timeout()
}

// Temporary reports whether err says it is temporary, as net.Error has it
// (deprecated there, but still asked).
func (e *scrubbed) Temporary() bool {
	var t interface{ Temporary() bool }
	return errors.As(e.err, &t) && t.Temporary()
}
