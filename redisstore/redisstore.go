// Package redisstore is a resume.Store in Redis Streams, shared by every
// replica that talks to the same Redis: a stream begun on one replica can
// be resumed on another. It is its own module, so that streamguard itself
// never requires go-redis. It needs Redis 5 or later (streams, scripts).
//
// Its keys, where P is Config.Prefix ("streamguard:" by default), N a
// stream's name, and the braces are there, literally (hash tags):
//
//	Pkey                the HMAC key of owner hashes: 32 random bytes,
//	                    made once with SET NX; it never expires
//	P{sets}:live        sorted sets of the names of the streams held,
//	P{sets}:ended       being written and ended, scored by the unix ms at
//	                    which each one expires: they count streams
//	                    against MaxStreams
//	Ps:{N}:meta         a hash: owner, last, ended, seen, created
//	Ps:{N}:events       a stream: event seq is the entry 0-seq, its bytes
//	                    in the field d; End adds the marker 0-(last+1)
//	                    with the field e
//	Pgone:{N}           the tombstone, "1"
//
// Every write and every Read gives the meta and events keys their TTL
// again, and the tombstone twice that. When the stream's keys expire, the
// tombstone outlives them by one TTL: while it lasts the stream is
// answered ErrExpired, then ErrNotFound, as a name never created is.
//
// Each stream's keys share a Redis Cluster hash slot through the hash tag
// {N}, and the two sets one through {sets}; each script touches one
// slot, so the store works on a cluster as on one server. (A Prefix with a
// hash tag of its own puts all the keys in one slot.) The sets' scores come
// from the replicas' clocks, which should agree to well within the TTL.
//
// A Read with nothing to return waits in XREAD BLOCK, one second at a
// time, until the stream has an entry past the reader's, which is either
// an event or End's marker: End wakes blocked readers at once, on every
// replica. A reader's context ends its wait at once: the XREAD then
// finishes in the background within the second; Close waits for such.
package redisstore

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/streamguard/streamguard/resume"
)

// The store's defaults and bounds.
const (
	// DefaultPrefix begins every key the store uses.
	DefaultPrefix = "streamguard:"
	// DefaultMaxLen bounds the events of one stream: 100,000.
	DefaultMaxLen = 100_000
	// MaxMaxLen is the largest MaxLen the store accepts: 2^40.
	MaxMaxLen = 1 << 40
	// MaxNameLen bounds a stream name, in bytes: 128. (The protocol's
	// names are 32.) A longer one is never held.
	MaxNameLen = 128
	// MaxOwnerLen bounds an owner hash, in bytes: 128. (OwnerHash's are
	// 32.)
	MaxOwnerLen = 128
)

const (
	keyLen         = 32               // bytes of the HMAC key
	readBatch      = 512              // events one Read returns at most
	readBatchBytes = 1 << 20          // and their bytes, past the first
	appendBatch    = 512              // events one script adds at most
	appendBytes    = 4 << 20          // and their bytes, past the first
	blockTime      = time.Second      // one XREAD BLOCK at most
	minBlock       = time.Millisecond // BLOCK 0 would wait for ever
)

// Config sets a store's keys and bounds. The zero value means the
// defaults. Every replica that shares the store should use the same.
type Config struct {
	// Prefix begins every key. Empty means DefaultPrefix.
	Prefix string
	// MaxLen bounds the events of one stream; an Append past it returns
	// resume.ErrFull and adds nothing: the store never trims events a
	// reader may still need. Zero means DefaultMaxLen (100,000); more than
	// MaxMaxLen means MaxMaxLen.
	MaxLen int64
	// TTL is how long a stream's keys live after its last write or read.
	// Zero means resume.DefaultMaxAge (10 minutes). A stream is then
	// answered ErrExpired for one more TTL.
	TTL time.Duration
	// MaxStreams bounds the streams held, across all replicas: those
	// being written, and the ended ones not yet expired. A Create past it
	// evicts ended streams, soonest to expire first (they then read as
	// expired), and returns resume.ErrFull when every stream held is still
	// being written. Zero means resume.DefaultMaxStreams (10,000).
	MaxStreams int64
}

// Store is a resume.Store in Redis. Its methods are safe for concurrent
// use.
type Store struct {
	rdb    redis.UniversalClient
	cfg    Config
	live   string // the live set's key
	ended  string // the ended set's key
	ttl    any    // ms, as a script's argument
	gone   any    // the tombstone's TTL, ms
	maxLen any    // MaxLen, as a script's argument

	keyMu sync.Mutex
	key   []byte

	bg sync.WaitGroup // XREADs left by Reads whose context ended
}

var _ resume.Store = (*Store)(nil)

// New returns a store in the Redis that client talks to, with cfg's
// defaults filled in. The caller keeps the client, and closes it after
// Close.
func New(client redis.UniversalClient, cfg Config) *Store {
	if cfg.Prefix == "" {
		cfg.Prefix = DefaultPrefix
	}
	if cfg.MaxLen <= 0 {
		cfg.MaxLen = DefaultMaxLen
	}
	cfg.MaxLen = min(cfg.MaxLen, MaxMaxLen)
	if cfg.TTL <= 0 {
		cfg.TTL = resume.DefaultMaxAge
	}
	cfg.TTL = max(cfg.TTL, time.Millisecond)
	if cfg.MaxStreams <= 0 {
		cfg.MaxStreams = resume.DefaultMaxStreams
	}
	ms := cfg.TTL.Milliseconds()
	return &Store{
		rdb:    client,
		cfg:    cfg,
		live:   cfg.Prefix + "{sets}:live",
		ended:  cfg.Prefix + "{sets}:ended",
		ttl:    strconv.FormatInt(ms, 10),
		gone:   strconv.FormatInt(2*ms, 10),
		maxLen: strconv.FormatInt(cfg.MaxLen, 10),
	}
}

// Config returns the store's configuration, defaults filled in.
func (s *Store) Config() Config { return s.cfg }

// Close waits for the XREADs that Reads ended by their context left
// running, a second at most. It does not close the client. Call it after
// the last Read has returned.
func (s *Store) Close() error {
	s.bg.Wait()
	return nil
}

// keys returns a stream's meta, events and tombstone keys.
func (s *Store) keys(stream string) []string {
	tag := "{" + stream + "}"
	return []string{
		s.cfg.Prefix + "s:" + tag + ":meta",
		s.cfg.Prefix + "s:" + tag + ":events",
		s.cfg.Prefix + "gone:" + tag,
	}
}

// Key returns the HMAC key every replica shares, making it the first time.
func (s *Store) Key(ctx context.Context) ([]byte, error) {
	s.keyMu.Lock()
	defer s.keyMu.Unlock()
	if s.key != nil {
		return s.key, nil
	}
	k := s.cfg.Prefix + "key"
	fresh := make([]byte, keyLen)
	rand.Read(fresh)
	if err := s.rdb.SetNX(ctx, k, fresh, 0).Err(); err != nil {
		return nil, fmt.Errorf("redisstore: key: %w", err)
	}
	key, err := s.rdb.Get(ctx, k).Bytes()
	if err != nil {
		return nil, fmt.Errorf("redisstore: key: %w", err)
	}
	if len(key) != keyLen {
		return nil, fmt.Errorf("redisstore: the key at %q is %d bytes, not %d", k, len(key), keyLen)
	}
	s.key = key
	return key, nil
}

// Create registers a stream: it counts it in the live set (ErrExists if
// there; past MaxStreams, it evicts ended streams or returns ErrFull), then
// makes its meta (ErrExists if there). A Create that fails on the way may
// leave the name counted until its TTL.
func (s *Store) Create(ctx context.Context, stream string, owner []byte) error {
	if len(stream) == 0 || len(stream) > MaxNameLen {
		return fmt.Errorf("redisstore: a stream name of %d bytes (1 to %d)", len(stream), MaxNameLen)
	}
	if len(owner) > MaxOwnerLen {
		return fmt.Errorf("redisstore: an owner hash of %d bytes (at most %d)", len(owner), MaxOwnerLen)
	}
	now := time.Now()
	r, err := reserveScript.Run(ctx, s.rdb, []string{s.live, s.ended},
		now.UnixMilli(), s.deadline(now), s.cfg.MaxStreams, stream).StringSlice()
	if err != nil {
		return storeErr(err)
	}
	if len(r) == 0 {
		return errReply("reserve", r)
	}
	for _, name := range r[1:] {
		// Best effort: keys not deleted expire after their TTL.
		evictScript.Run(ctx, s.rdb, s.keys(name), s.ttl, s.gone)
	}
	if r[0] != "ok" {
		return resume.ErrFull
	}
	err = createScript.Run(ctx, s.rdb, s.keys(stream), s.ttl, s.gone, owner, now.UnixMilli()).Err()
	return storeErr(err)
}

// deadline returns when a stream active at now expires, in unix ms.
func (s *Store) deadline(now time.Time) int64 { return now.Add(s.cfg.TTL).UnixMilli() }

// End marks a stream complete and wakes its readers. It is idempotent.
func (s *Store) End(ctx context.Context, stream string) error {
	if !validName(stream) {
		return resume.ErrNotFound
	}
	if _, err := s.run(ctx, endScript, stream, s.keys(stream), s.ttl, s.gone); err != nil {
		return err
	}
	// Now Create may evict it.
	return endedScript.Run(ctx, s.rdb, []string{s.live, s.ended}, stream, s.deadline(time.Now())).Err()
}

// Info returns what the store knows of a stream. It is not a visit: it
// neither sets Seen nor renews the TTL.
func (s *Store) Info(ctx context.Context, stream string) (resume.Info, error) {
	if !validName(stream) {
		return resume.Info{}, resume.ErrNotFound
	}
	r, err := infoScript.Run(ctx, s.rdb, s.keys(stream)).Slice()
	if err != nil {
		return resume.Info{}, storeErr(err)
	}
	if len(r) != 4 {
		return resume.Info{}, errReply("info", r)
	}
	owner, _ := r[0].(string)
	last, err1 := parseUint(r[1])
	ended, _ := r[2].(string)
	seen, err2 := parseUint(r[3])
	if err := errors.Join(err1, err2); err != nil {
		return resume.Info{}, fmt.Errorf("redisstore: info of %q: %w", stream, err)
	}
	return resume.Info{
		Owner: []byte(owner),
		Last:  last,
		Ended: ended == "1",
		Seen:  time.UnixMilli(int64(seen)),
	}, nil
}

// run runs a stream's script (its keys, then args) and renews the
// stream's deadline in the live set, in one round trip.
func (s *Store) run(ctx context.Context, sc *redis.Script, stream string, keys []string, args ...any) (*redis.Cmd, error) {
	z := redis.Z{Score: float64(s.deadline(time.Now())), Member: stream}
	for attempt := 0; ; attempt++ {
		pipe := s.rdb.Pipeline()
		var cmd *redis.Cmd
		if attempt == 0 {
			cmd = sc.EvalSha(ctx, pipe, keys, args...)
		} else {
			cmd = sc.Eval(ctx, pipe, keys, args...)
		}
		pipe.ZAddXX(ctx, s.live, z) // only a stream counted; best effort
		pipe.ZAddXX(ctx, s.ended, z)
		pipe.Exec(ctx)
		if attempt == 0 && redis.HasErrorPrefix(cmd.Err(), "NOSCRIPT") {
			continue // the server does not have it (yet): send it whole
		}
		return cmd, storeErr(cmd.Err())
	}
}

func validName(stream string) bool { return len(stream) > 0 && len(stream) <= MaxNameLen }

func parseUint(v any) (uint64, error) {
	str, ok := v.(string)
	if !ok {
		return 0, fmt.Errorf("a %T, not a number", v)
	}
	return strconv.ParseUint(str, 10, 64)
}

func errReply(what string, r any) error {
	return fmt.Errorf("redisstore: an unexpected %s reply (%T of %d)", what, r, lenOf(r))
}

func lenOf(r any) int {
	if s, ok := r.([]any); ok {
		return len(s)
	}
	return -1
}
