package resume

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"
)

// RedisClient is what RedisStore needs of a Redis client: one command and
// its reply, decoded as Go clients decode RESP2: a string for a status or a
// bulk string, an int64 for an integer, []any for an array, and nil with no
// error for a nil reply; an error reply is an error whose text is the
// server's ("NOSCRIPT ...", "SGFULL ..."). With go-redis that is
//
//	func (c adapter) Do(ctx context.Context, args ...any) (any, error) {
//		v, err := c.rdb.Do(ctx, args...).Result()
//		if err == redis.Nil {
//			return nil, nil
//		}
//		return v, err
//	}
//
// which the module github.com/streamguard/streamguard/redisstore ships, so
// that this module never requires go-redis. The relay command uses a small
// client of its own. Do must not keep args, or their bytes, once it has
// returned: the store reuses them. Do must bound each call in time when
// ctx has no deadline, as both those clients do (go-redis's ReadTimeout and
// WriteTimeout, 3 s by default; the relay's, 10 s): a resumable stream's
// writes wait for its Appends, whose context never ends (the events of a
// stream whose client has gone are still stored), so a Do that never
// returns would hold the stream. The store's blocking reads ask Redis to
// block for a second at most.
type RedisClient interface {
	Do(ctx context.Context, args ...any) (any, error)
}

// The Redis store's defaults and bounds.
const (
	// DefaultRedisPrefix begins every key the store uses.
	DefaultRedisPrefix = "streamguard:"
	// DefaultRedisMaxLen bounds the events of one stream: 100,000.
	DefaultRedisMaxLen = 100_000
	// DefaultRedisMaxStreamBytes bounds the event bytes of one stream: 64
	// MiB.
	DefaultRedisMaxStreamBytes = 64 << 20
	// MaxRedisMaxLen is the largest MaxLen the store accepts: 2^40.
	MaxRedisMaxLen = 1 << 40
	// MaxRedisNameLen bounds a stream name, in bytes: 128. (The
	// protocol's names are 32.) A longer one is never held, nor one
	// holding a brace: the name is its keys' Cluster hash tag.
	MaxRedisNameLen = 128
	// MaxRedisOwnerLen bounds an owner hash, in bytes: 128. (OwnerHash's
	// are 32.)
	MaxRedisOwnerLen = 128
)

const (
	redisKeyLen      = 32               // bytes of the HMAC key
	redisKeyRecheck  = 10 * time.Second // how long a replica keeps it unread
	redisReadBatch   = 512              // events one Read returns at most
	redisReadBytes   = 1 << 20          // and their bytes, but for an event larger
	redisAppendBatch = 512              // events one script adds at most
	redisAppendBytes = 4 << 20          // and their bytes, past the first
	redisBlock       = time.Second      // one XREAD BLOCK at most
	redisMinBlock    = time.Millisecond // BLOCK 0 would wait for ever
	redisTouchEvery  = 8                // the sets' scores are renewed every TTL/8
	redisMaxTouched  = 1 << 14          // streams whose renewal is remembered
)

// RedisConfig sets a Redis store's keys and bounds. The zero value means
// the defaults. Every replica that shares the store should use the same.
type RedisConfig struct {
	// Prefix begins every key. Empty means DefaultRedisPrefix. On a Redis
	// Cluster it must hold no brace: the keys carry hash tags of their own
	// (a stream's keys share one slot, which its scripts need).
	Prefix string
	// MaxLen bounds the events of one stream; an Append past it returns
	// ErrFull and adds nothing: the store never trims events a reader may
	// still need. Zero means DefaultRedisMaxLen (100,000); more than
	// MaxRedisMaxLen means MaxRedisMaxLen.
	MaxLen int64
	// MaxStreamBytes bounds the event bytes of one stream, the same way.
	// Zero means DefaultRedisMaxStreamBytes (64 MiB). The store's total is
	// Redis's to bound: maxmemory, with noeviction, makes a full Redis
	// refuse writes rather than drop keys. The store reports that as
	// ErrFull for a Create and for an Append of events; Reads, a writer's
	// beats and the ends of the streams it holds still work.
	MaxStreamBytes int64
	// TTL is how long a stream's keys live after its last write or read.
	// Zero means DefaultMaxAge (10 minutes). A stream is then answered
	// ErrExpired for one more TTL.
	TTL time.Duration
	// MaxStreams bounds the streams held, across all replicas: those
	// being written, and the ended ones not yet expired. A Create past it
	// evicts ended streams, soonest to expire first (they then read as
	// expired), and returns ErrFull when every stream held is still being
	// written. Zero means DefaultMaxStreams (10,000).
	MaxStreams int64
}

// RedisStore is a Store in Redis Streams, shared by every replica that
// talks to the same Redis: a stream begun on one replica can be resumed on
// another. It needs Redis 5 or later (streams, scripts).
//
// Its keys, where P is RedisConfig.Prefix, N a stream's name, and the
// braces are there, literally (hash tags):
//
//	Pkey                the HMAC key of owner hashes: 32 random bytes,
//	                    made once with SET NX; it never expires
//	P{sets}:live        sorted sets of the names of the streams held,
//	P{sets}:ended       being written and ended, scored by the unix ms at
//	                    which each one expires, and TTL/8 more (a score
//	                    must not run out before its stream's keys): they
//	                    count streams against MaxStreams
//	Ps:{N}:meta         a hash: owner, last, ended, seen, created,
//	                    written (seen and written by Redis's clock:
//	                    TIME), bytes (its events'), cut (1: it ended
//	                    short, EndTruncated)
//	Ps:{N}:events       a stream: each Append's batch is one entry, its id
//	                    0-{seq of its last event}, its fields n (its
//	                    events), l (their lengths, "12,7,...") and d
//	                    (their bytes end to end); End adds the marker
//	                    0-(last+1) with the field e
//	Pgone:{N}           the tombstone: the owner hash, so that an
//	                    expired stream's ErrExpired (*ExpiredError)
//	                    says whose it was ("1" from versions before)
//
// Every write and every Read gives the meta and events keys their TTL
// again, and the tombstone twice that. When the stream's keys expire, the
// tombstone outlives them by one TTL: while it lasts the stream is answered
// ErrExpired, then ErrNotFound, as a name never created is.
//
// Each stream's keys share a Redis Cluster hash slot through the hash tag
// {N}, and the two sets one through {sets}; each script touches one slot.
// The sets' scores come from the replicas' clocks, which should agree to
// well within the TTL.
//
// Append sends one script per flush (up to 512 events): the batch is added
// whole or not at all. A Read with nothing to return waits in XREAD BLOCK,
// one second at a time, until the stream has an entry past the reader's,
// an event or End's marker: End wakes blocked readers at once, on every
// replica. A reader's context ends its wait at once: the XREAD then
// finishes in the background within the second; Close waits for such.
type RedisStore struct {
	rdb      RedisClient
	cfg      RedisConfig
	live     string // the live set's key
	ended    string // the ended set's key
	ttl      any    // ms, a script's argument: a string, boxed once
	gone     any    // the tombstone's TTL, ms, the same
	maxLen   any    // MaxLen, the same
	maxBytes any    // MaxStreamBytes, the same
	// now is this replica's clock (tests set it): a stream's seen and
	// written are by Redis's clock, whatever it says.
	now func() time.Time

	keyMu sync.Mutex
	key   []byte
	keyAt time.Time // when key was read

	touchMu sync.Mutex
	touched map[string]time.Time // when each stream's score was last renewed

	bg sync.WaitGroup // XREADs left by Reads whose context ended
}

var _ Store = (*RedisStore)(nil)

// NewRedisStore returns a store in the Redis that client talks to, with
// cfg's defaults filled in. The caller keeps the client, and closes it
// after Close.
func NewRedisStore(client RedisClient, cfg RedisConfig) *RedisStore {
	if cfg.Prefix == "" {
		cfg.Prefix = DefaultRedisPrefix
	}
	if cfg.MaxLen <= 0 {
		cfg.MaxLen = DefaultRedisMaxLen
	}
	cfg.MaxLen = min(cfg.MaxLen, MaxRedisMaxLen)
	if cfg.MaxStreamBytes <= 0 {
		cfg.MaxStreamBytes = DefaultRedisMaxStreamBytes
	}
	if cfg.TTL <= 0 {
		cfg.TTL = DefaultMaxAge
	}
	cfg.TTL = max(cfg.TTL, time.Millisecond)
	if cfg.MaxStreams <= 0 {
		cfg.MaxStreams = DefaultMaxStreams
	}
	ms := cfg.TTL.Milliseconds()
	return &RedisStore{
		rdb:      client,
		cfg:      cfg,
		live:     cfg.Prefix + "{sets}:live",
		ended:    cfg.Prefix + "{sets}:ended",
		ttl:      any(strconv.FormatInt(ms, 10)),
		gone:     any(strconv.FormatInt(2*ms, 10)),
		maxLen:   any(strconv.FormatInt(cfg.MaxLen, 10)),
		maxBytes: any(strconv.FormatInt(cfg.MaxStreamBytes, 10)),
		touched:  map[string]time.Time{},
		now:      time.Now,
	}
}

// Config returns the store's configuration, defaults filled in.
func (s *RedisStore) Config() RedisConfig { return s.cfg }

// Close waits for the XREADs that Reads ended by their context left
// running, a second at most. It does not close the client. Call it after
// the last Read has returned.
func (s *RedisStore) Close() error {
	s.bg.Wait()
	return nil
}

// keys returns a stream's meta, events and tombstone keys.
func (s *RedisStore) keys(stream string) []string {
	tag := "{" + stream + "}"
	return []string{
		s.cfg.Prefix + "s:" + tag + ":meta",
		s.cfg.Prefix + "s:" + tag + ":events",
		s.cfg.Prefix + "gone:" + tag,
	}
}

// Key returns the HMAC key every replica shares, making it when Redis has
// none. It is read again every redisKeyRecheck, so that replicas agree
// again soon after Redis lost it (FLUSHDB, a restart without persistence,
// an eviction) and one of them made another.
func (s *RedisStore) Key(ctx context.Context) ([]byte, error) {
	s.keyMu.Lock()
	defer s.keyMu.Unlock()
	now := s.now()
	if s.key != nil && now.Sub(s.keyAt) < redisKeyRecheck && now.After(s.keyAt) {
		return s.key, nil
	}
	// Read first, write only when there is none: Redis past its
	// maxmemory refuses a SET, even one that would not set.
	k := s.cfg.Prefix + "key"
	v, err := s.rdb.Do(ctx, "GET", k)
	if err == nil && v == nil {
		fresh := make([]byte, redisKeyLen)
		rand.Read(fresh)
		if _, err = s.rdb.Do(ctx, "SET", k, fresh, "NX"); err == nil {
			v, err = s.rdb.Do(ctx, "GET", k) // another replica's, if it was first
		}
	}
	if err != nil {
		return nil, fmt.Errorf("resume: redis key: %w", redisErr(err))
	}
	key, _ := v.(string)
	if len(key) != redisKeyLen {
		return nil, fmt.Errorf("resume: the key at %q is %d bytes, not %d", k, len(key), redisKeyLen)
	}
	if string(s.key) != key {
		s.key = []byte(key) // a new slice: callers may hold the old one
	}
	s.keyAt = now
	return s.key, nil
}

// Create registers a stream: it counts it in the live set (ErrExists if
// there; past MaxStreams, it evicts ended streams or returns ErrFull), then
// makes its meta (ErrExists if there). When that fails, it takes the name
// out of the count again; if that fails too, the name stays counted until
// its TTL.
func (s *RedisStore) Create(ctx context.Context, stream string, owner []byte) error {
	if !validRedisName(stream) {
		return fmt.Errorf("resume: a stream name of %d bytes (1 to %d, no brace)", len(stream), MaxRedisNameLen)
	}
	if len(owner) > MaxRedisOwnerLen {
		return fmt.Errorf("resume: an owner hash of %d bytes (at most %d)", len(owner), MaxRedisOwnerLen)
	}
	now := s.now()
	v, err := reserveScript.run(ctx, s.rdb, []string{s.live, s.ended},
		now.UnixMilli(), s.deadline(now), s.cfg.MaxStreams, stream)
	if err != nil {
		return err
	}
	r, _ := v.([]any)
	if len(r) == 0 {
		return errRedisReply("reserve", v)
	}
	for _, name := range r[1:] {
		if n, ok := name.(string); ok {
			// Best effort: keys not deleted expire after their TTL.
			evictScript.run(ctx, s.rdb, s.keys(n), s.ttl, s.gone)
		}
	}
	if r[0] != "ok" {
		return ErrFull
	}
	if _, err = createScript.run(ctx, s.rdb, s.keys(stream), s.ttl, s.gone, owner, now.UnixMilli()); err != nil {
		undo, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		forgetScript.run(undo, s.rdb, []string{s.live, s.ended}, stream)
		return err
	}
	return nil
}

// deadline returns when a stream active at now expires, in unix ms.
// deadline is the score of a stream counted at now in the sets: its keys'
// TTL and TTL/redisTouchEvery more, since touch renews a score at most that
// often while every write and read renews the keys: a score must never run
// out before its keys (a Create in between would drop the stream from the
// count, and touch's ZADD XX never adds it again).
func (s *RedisStore) deadline(now time.Time) int64 {
	return now.Add(s.cfg.TTL + s.cfg.TTL/redisTouchEvery).UnixMilli()
}

// Info returns what the store knows of a stream. It is not a visit: it
// neither sets Seen nor renews the TTL.
func (s *RedisStore) Info(ctx context.Context, stream string) (Info, error) {
	if !validRedisName(stream) {
		return Info{}, ErrNotFound
	}
	v, err := infoScript.run(ctx, s.rdb, s.keys(stream))
	if err != nil {
		return Info{}, err
	}
	r, _ := v.([]any)
	if len(r) < 4 || len(r) > 5 {
		return Info{}, errRedisReply("info", v)
	}
	owner, _ := r[0].(string)
	last, err1 := parseRedisUint(r[1])
	ended, _ := r[2].(string)
	// Seen and written are by the server's clock, told as ages: by this
	// one's.
	now := s.now()
	ago := func(ms uint64) time.Time { return now.Add(-time.Duration(min(ms, 1<<40)) * time.Millisecond) }
	seen, err2 := parseRedisUint(r[3])
	info := Info{Owner: []byte(owner), Last: last, Ended: ended == "1", Seen: ago(seen)}
	var err3 error
	if len(r) == 5 && r[4] != nil {
		var age uint64
		age, err3 = parseRedisUint(r[4])
		info.Written = ago(age)
	}
	if err := errors.Join(err1, err2, err3); err != nil {
		return Info{}, fmt.Errorf("resume: redis info of %q: %w", stream, err)
	}
	return info, nil
}

// touch renews a live stream's expiry in the sets, at most every TTL/8 for
// each stream from this store: the scores only need to outlast the keys.
func (s *RedisStore) touch(ctx context.Context, stream string) {
	now := s.now()
	s.touchMu.Lock()
	last, ok := s.touched[stream]
	fresh := ok && now.Sub(last) < s.cfg.TTL/redisTouchEvery
	if !fresh {
		if len(s.touched) >= redisMaxTouched {
			clear(s.touched)
		}
		s.touched[stream] = now
	}
	s.touchMu.Unlock()
	if !fresh {
		// Only a stream counted; best effort.
		s.rdb.Do(ctx, "ZADD", s.live, "XX", s.deadline(now), stream)
		s.rdb.Do(ctx, "ZADD", s.ended, "XX", s.deadline(now), stream)
	}
}

func validRedisName(stream string) bool {
	return len(stream) > 0 && len(stream) <= MaxRedisNameLen && !strings.ContainsAny(stream, "{}")
}

func parseRedisUint(v any) (uint64, error) {
	str, ok := v.(string)
	if !ok {
		return 0, fmt.Errorf("a %T, not a number", v)
	}
	return strconv.ParseUint(str, 10, 64)
}

func errRedisReply(what string, r any) error {
	n := -1
	if s, ok := r.([]any); ok {
		n = len(s)
	}
	return fmt.Errorf("resume: an unexpected redis %s reply (%T of %d)", what, r, n)
}
