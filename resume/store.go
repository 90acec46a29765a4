// Package resume keeps the events of resumable streams for the server side
// of streamguard's resume protocol: a Store interface, the in-memory store
// (NewMemoryStore), and the credential check a resume must pass.
//
// The protocol: a server with resume on names each SSE stream with 128
// random bits ("{stream}", lower-case base32), sends it in the
// Resumable-Stream response header, gives event seq (from 1) the id
// "{stream}.{seq}", and appends every event to a Store. A request that
// carries Last-Event-ID "{stream}.{seq}" and the credentials of the request
// that began the stream is answered from the Store: the events after seq,
// then the live tail, then the end. The client side is the sse package's
// guard, which resumes such streams by itself.
//
// A Store is shared by every replica that may serve a resume: the in-memory
// store serves one process, the Redis Streams store (the separate module
// github.com/streamguard/streamguard/redisstore) several.
package resume

import (
	"context"
	"errors"
	"time"
)

// The errors a Store returns. Compare them with errors.Is.
var (
	// ErrNotFound: the store does not hold the stream (never created, or
	// forgotten since).
	ErrNotFound = errors.New("resume: no such stream")
	// ErrExpired: the stream was held, and has expired.
	ErrExpired = errors.New("resume: stream expired")
	// ErrFull: the store cannot take another stream, or more events of
	// this one, within its limits. Streams it already holds are unharmed.
	ErrFull = errors.New("resume: store full")
	// ErrExists: Create was given the name of a stream the store holds.
	ErrExists = errors.New("resume: stream exists")
	// ErrSequence: Append was given an event whose Seq does not follow the
	// stream's last.
	ErrSequence = errors.New("resume: event out of sequence")
	// ErrTruncated: Read was asked for the events after the last of a
	// stream that ended short (EndTruncated): the store holds no more of
	// it, and never will.
	ErrTruncated = errors.New("resume: the store holds the stream only in part")
)

// ExpiredError is ErrExpired with the owner hash of the stream that
// expired, for a store that still knows it: a server tells a stream's
// owner that it expired (410) and anyone else that there is no such stream
// (404), as it does of a live stream. A store that returns a plain
// ErrExpired has every resume of an expired stream answered 404.
// errors.Is(err, ErrExpired) holds for it; its message does not show the
// hash.
type ExpiredError struct {
	Owner []byte
}

func (e *ExpiredError) Error() string { return ErrExpired.Error() }
func (e *ExpiredError) Unwrap() error { return ErrExpired }

// Event is one event of a stream: its sequence number (from 1, each one
// more than the one before) and its bytes as sent, from its first line up
// to its id line: the id line and the blank line that end every event are
// left out, as the server that reads it writes them again (id:
// {stream}.{seq}, LF line ends).
type Event struct {
	Seq  uint64
	Data []byte
}

// Info is what a store knows of a stream.
type Info struct {
	Owner []byte    // the keyed hash of the credentials that began it
	Last  uint64    // the sequence number of its last event; 0: none yet
	Ended bool      // no event will follow Last
	Seen  time.Time // when a reader last read it (or when it was created)
	// Written is when its writer last appended to it, or said it is alive
	// with an Append of no events (or when it was created), by the
	// caller's clock; zero when the store does not know. A reader waiting
	// on a stream that is not ended and whose writer has been silent for
	// long has lost it: the writer's process went down.
	Written time.Time
}

// Store keeps the events of resumable streams. Its methods are safe for
// concurrent use; a stream has one writer (Append, End) and any number of
// readers.
type Store interface {
	// Key returns the secret that keys the credential hashes: the same
	// for every replica that shares the store, made once and kept in the
	// store itself, so that a replica can check a stream another began.
	Key(ctx context.Context) ([]byte, error)
	// Create registers a new stream and the hash of its owner's
	// credentials. It returns ErrExists for a name the store holds, and
	// ErrFull when its limits leave no room. A Create that fails should
	// leave nothing counted against those limits: the server serves the
	// request without resume when the store fails, and forgets the name.
	Create(ctx context.Context, stream string, owner []byte) error
	// Append adds events to a stream, in order; the first one's Seq is one
	// more than the stream's last. A store may batch them; they are
	// readable when Append returns. Its ctx never ends (a stream whose
	// client has gone is still stored), and the stream's writes wait for
	// it: a store that does I/O bounds each Append in time itself. An
	// Append of no events only says that the writer is alive
	// (Info.Written); it may come concurrently with the writer's others.
	// Append must not retain events or their Data once it returns (as
	// io.Writer must not retain p): the server frames the next events
	// into the same buffer. A store keeps copies.
	Append(ctx context.Context, stream string, events []Event) error
	// End marks the stream complete: readers get every event and then
	// ended.
	End(ctx context.Context, stream string) error
	// EndTruncated marks the stream ended short of its end (the store
	// refused some of its events, or its writer did not finish it: the
	// events it holds are not all the stream was to have): readers get
	// every event it holds, not reported as
	// ended, and a Read after the last then returns ErrTruncated. Info
	// reports it Ended. The first of End and EndTruncated counts; the
	// other is then a no-op.
	EndTruncated(ctx context.Context, stream string) error
	// Delete forgets a stream whose name was never sent (its response
	// turned out not to be an event stream), as if it had never been
	// created: Info and Read then return ErrNotFound, and it no longer
	// counts against the store's limits. Deleting a stream the store does
	// not hold is not an error.
	Delete(ctx context.Context, stream string) error
	// Info returns what the store knows of a stream, or ErrNotFound or
	// ErrExpired (an *ExpiredError where the store still knows whose the
	// stream was).
	Info(ctx context.Context, stream string) (Info, error)
	// Read returns events of the stream after sequence number after, in
	// order (a bounded batch), and whether the stream has ended with the
	// last of them. When there is none yet and the stream has not ended,
	// it waits for one, or for ctx; when the stream ended short
	// (EndTruncated), it returns ErrTruncated. Every Read counts as a
	// reader's visit (Info.Seen).
	Read(ctx context.Context, stream string, after uint64) (events []Event, ended bool, err error)
	// Visit counts as a reader's visit (Info.Seen), as a Read does,
	// without reading: a reader whose client takes long to receive what it
	// read says that it is still there, so that the stream's writer does
	// not take the stream for abandoned. It returns ErrNotFound or
	// ErrExpired for a stream the store does not hold.
	Visit(ctx context.Context, stream string) error
}
