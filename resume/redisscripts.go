package resume

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"strings"
)

// The Redis store's Lua scripts. Each one of a stream touches only that
// stream's keys, which share a hash slot: KEYS[1] its meta hash, KEYS[2]
// its events, KEYS[3] its tombstone. A script refuses with an error reply
// whose first word is one of the codes redisErr maps to this package's
// errors.

// script is a Lua script, sent by its SHA-1 and, when the server does not
// have it yet, whole.
type script struct {
	src, sha string
	shaArg   any // sha, boxed once
}

func newScript(src string) *script {
	h := sha1.Sum([]byte(src))
	sha := hex.EncodeToString(h[:])
	return &script{src: src, sha: sha, shaArg: sha}
}

// run runs the script with keys and args.
func (sc *script) run(ctx context.Context, c RedisClient, keys []string, args ...any) (any, error) {
	cmd := make([]any, 0, 3+len(keys)+len(args))
	cmd = append(cmd, "EVALSHA", sc.shaArg, len(keys))
	for _, k := range keys {
		cmd = append(cmd, k)
	}
	return sc.do(ctx, c, append(cmd, args...))
}

// evalsha appends the script's EVALSHA with keys to cmd; its arguments
// follow.
func (sc *script) evalsha(cmd []any, keys ...any) []any {
	cmd = append(cmd, "EVALSHA", sc.shaArg, len(keys))
	return append(cmd, keys...)
}

// do sends cmd, an EVALSHA of the script, and the script whole when the
// server does not have it.
func (sc *script) do(ctx context.Context, c RedisClient, cmd []any) (any, error) {
	v, err := c.Do(ctx, cmd...)
	if err != nil && strings.HasPrefix(err.Error(), "NOSCRIPT") {
		cmd[0], cmd[1] = "EVAL", sc.src
		v, err = c.Do(ctx, cmd...)
	}
	return v, redisErr(err)
}

// prelude defines what the scripts of a stream share: missing answers for
// a stream without meta (expired while the tombstone lasts, with the owner
// hash it holds in hex, else unknown);
// touch gives the keys their TTL (ARGV[1], ms) and the tombstone its own
// (ARGV[2], ms); now is the server's clock, in unix ms: the meta's
// written (a writer's last sign of life) is by it, so that a replica whose
// clock is off does not take a live writer for a dead one. It first asks
// for effects replication: Redis 5 and 6 set to lua-replicate-commands no
// (and Redis before 5) refuse a write after TIME without it; Redis 7 always
// replicates effects and takes the call as a no-op.
const prelude = `
if redis.replicate_commands then redis.replicate_commands() end
local function missing()
	local owner = redis.call('GET', KEYS[3])
	if owner then
		return redis.error_reply('SGEXPIRED ' .. string.gsub(owner, '.', function(c) return string.format('%02x', string.byte(c)) end))
	end
	return redis.error_reply('SGNOTFOUND no such stream')
end
local function touch()
	redis.call('PEXPIRE', KEYS[1], ARGV[1])
	redis.call('PEXPIRE', KEYS[2], ARGV[1])
	if redis.call('PEXPIRE', KEYS[3], ARGV[2]) == 0 then
		redis.call('SET', KEYS[3], redis.call('HGET', KEYS[1], 'owner') or '1', 'PX', ARGV[2])
	end
end
local function now()
	local t = redis.call('TIME')
	return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
`

// reserveScript counts a new stream in the live set. KEYS[1] is the live
// set, KEYS[2] the ended set: stream names by the unix ms at which each
// one expires. It adds the name, drops the names whose time has passed,
// and, when the two sets hold more than max names, evicts ended streams,
// soonest to expire first, to make room (at most 16: the next Create goes
// on), or takes the name out again, having evicted none when evicting
// them all would not make the room. It
// returns {"ok" or "full", evicted names...}: the caller deletes their
// keys. ARGV: now, deadline, max, name.
//
// Its first write adds to memory: Redis past its maxmemory (noeviction)
// refuses a script's first such write, and no later one, so this one is
// refused whole, and the scripts that only keep streams going or end them
// (alive, end, read) begin with writes that free or keep memory (touch),
// so that a full Redis still serves and ends the streams it holds.
var reserveScript = newScript(`
local now = tonumber(ARGV[1])
for _, k in ipairs(KEYS) do
	local at = redis.call('ZSCORE', k, ARGV[4])
	if at and tonumber(at) >= now then
		return redis.error_reply('SGEXISTS stream exists')
	end
end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', '(' .. ARGV[1])
local r, max = {'ok'}, tonumber(ARGV[3])
local ended = redis.call('ZCARD', KEYS[2])
local n = redis.call('ZCARD', KEYS[1]) - 1 + ended
if n - ended >= max then
	ended = 0 -- forgetting every ended stream would not make room: keep them
end
while n >= max and ended > 0 and #r <= 16 do
	local p = redis.call('ZPOPMIN', KEYS[2])
	if #p == 0 then break end
	r[#r + 1] = p[1]
	n, ended = n - 1, ended - 1
end
if n >= max then
	redis.call('ZREM', KEYS[1], ARGV[4])
	r[1] = 'full'
end
return r
`)

// endedScript moves an ended stream from the live set (KEYS[1]) to the
// ended set (KEYS[2]), where Create may evict it. ARGV: name, deadline.
var endedScript = newScript(`
if redis.call('ZREM', KEYS[1], ARGV[1]) == 1 then
	redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
end
return 1
`)

// forgetScript takes a deleted stream's name out of the live set
// (KEYS[1]) and the ended set (KEYS[2]). ARGV: name.
var forgetScript = newScript(`
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
return 1
`)

// evictScript deletes a stream's keys and leaves its tombstone, so that
// it reads as expired. ARGV: ttl (unused), tombstone ttl.
var evictScript = newScript(`
local owner = redis.call('HGET', KEYS[1], 'owner') or redis.call('GET', KEYS[3]) or '1'
redis.call('DEL', KEYS[1], KEYS[2])
redis.call('SET', KEYS[3], owner, 'PX', ARGV[2])
return 1
`)

// createScript makes a stream's meta. ARGV: ttl, tombstone ttl, owner,
// now.
var createScript = newScript(prelude + `
if redis.call('EXISTS', KEYS[1]) == 1 then
	return redis.error_reply('SGEXISTS stream exists')
end
redis.call('HSET', KEYS[1], 'owner', ARGV[3], 'last', '0', 'ended', '0',
	'seen', now(), 'created', ARGV[4], 'written', now())
redis.call('DEL', KEYS[2])
touch()
redis.call('SET', KEYS[3], ARGV[3], 'PX', ARGV[2])
return 1
`)

// appendScript adds a batch of events after the stream's last, as one
// entry: its id 0-{seq of its last event}, its fields n (how many events),
// l (their lengths, "12,7,...") and d (their bytes end to end); the meta's
// bytes counts them all. ARGV: ttl, tombstone ttl, max len, first seq,
// count, the lengths, the bytes, max bytes. A batch whose lengths are not
// count decimal numbers, comma-separated, adding up to its bytes is refused
// (SGBATCH), so that no client can store a batch the readers would fail on.
// The batch stored last, sent again (a client's retry), is stored already:
// it succeeds and adds nothing.
var appendScript = newScript(prelude + `
local m = redis.call('HMGET', KEYS[1], 'last', 'ended', 'bytes')
if not m[1] then return missing() end
if m[2] == '1' then
	return redis.error_reply('SGENDED stream ended')
end
local seq = tonumber(m[1])
if tonumber(ARGV[4]) ~= seq + 1 then
	-- The very batch stored last, again: a client's retry of a call
	-- whose reply was lost (go-redis retries after a broken connection).
	if tonumber(ARGV[4]) + tonumber(ARGV[5]) - 1 == seq then
		local e = redis.call('XRANGE', KEYS[2], '0-' .. seq, '0-' .. seq)
		if e[1] and e[1][2][1] == 'n' and e[1][2][2] == ARGV[5] and e[1][2][4] == ARGV[6] and e[1][2][6] == ARGV[7] then
			return seq
		end
	end
	return redis.error_reply('SGSEQUENCE event out of sequence')
end
local k, sum = 0, 0
if string.find(ARGV[6], '^%d+$') or string.find(ARGV[6], '^%d+,[%d,]*%d$') and not string.find(ARGV[6], ',,', 1, true) then
	for l in string.gmatch(ARGV[6], '%d+') do
		k, sum = k + 1, sum + tonumber(l)
	end
end
if k < 1 or k ~= tonumber(ARGV[5]) or sum ~= #ARGV[7] then
	return redis.error_reply('SGBATCH lengths that do not match the batch')
end
local last, size = seq + k, (tonumber(m[3]) or 0) + #ARGV[7]
if last > tonumber(ARGV[3]) or size > tonumber(ARGV[8]) then
	return redis.error_reply('SGFULL stream full')
end
redis.call('XADD', KEYS[2], '0-' .. last, 'n', ARGV[5], 'l', ARGV[6], 'd', ARGV[7])
redis.call('HSET', KEYS[1], 'last', last, 'bytes', size, 'written', now())
touch()
return last
`)

// aliveScript records that a stream's writer is alive: an Append of no
// events. ARGV: ttl, tombstone ttl.
var aliveScript = newScript(prelude + `
local m = redis.call('HMGET', KEYS[1], 'last', 'ended')
if not m[1] then return missing() end
if m[2] ~= '1' then
	touch()
	redis.call('HSET', KEYS[1], 'written', now())
end
return 1
`)

// endScript marks a stream ended, short of its end when ARGV[3] is 1
// (the meta's cut), and adds the end marker, the entry 0-{last+1} with
// field e, which wakes blocked readers; the first end counts. ARGV: ttl,
// tombstone ttl, cut (0 or 1).
var endScript = newScript(prelude + `
local m = redis.call('HMGET', KEYS[1], 'last', 'ended')
if not m[1] then return missing() end
touch()
if m[2] ~= '1' then
	redis.call('HSET', KEYS[1], 'ended', '1', 'cut', ARGV[3])
	redis.call('XADD', KEYS[2], '0-' .. (tonumber(m[1]) + 1), 'e', '1')
	-- A stream without events had no events key for touch to renew:
	-- the marker made it, and it expires with the others.
	redis.call('PEXPIRE', KEYS[2], ARGV[1])
end
return 1
`)

// readScript returns {last, ended, first, lengths, body, cut}: the events
// after after, from first (after+1) on, as their lengths ("12,7,...") and
// their bytes end to end: those of the entry that holds first, then whole
// entries, while they keep to count events and max bytes past the first
// event (an event larger than max comes alone). It records the visit, by
// the server's clock. ARGV: ttl, tombstone ttl, now (unused), after, first
// entry id, count, max bytes.
var readScript = newScript(prelude + `
-- rest returns the events of an entry (k of them, lengths l, bytes d,
-- the first numbered from) after after, and max bytes of them past the
-- first at most: their lengths, bytes, first number and count, and
-- whether some were left out.
local function rest(l, d, from, k, after, max)
	local pos, off = 1, 0
	while from <= after do
		local comma = string.find(l, ',', pos, true)
		off = off + tonumber(string.sub(l, pos, comma - 1))
		pos, from, k = comma + 1, from + 1, k - 1
	end
	if #d - off <= max then
		return string.sub(l, pos), string.sub(d, off + 1), from, k, false
	end
	local p, size, n = pos, 0, 0
	while true do
		local comma = string.find(l, ',', p, true)
		local len = tonumber(string.sub(l, p, (comma or 0) - 1))
		if n > 0 and size + len > max then break end
		size, n = size + len, n + 1
		if not comma then
			p = #l + 2
			break
		end
		p = comma + 1
	end
	return string.sub(l, pos, p - 2), string.sub(d, off + 1, off + size), from, n, true
end
local m = redis.call('HMGET', KEYS[1], 'last', 'ended', 'cut')
if not m[1] then return missing() end
touch()
redis.call('HSET', KEYS[1], 'seen', now())
local after, count, max = tonumber(ARGV[4]), tonumber(ARGV[6]), tonumber(ARGV[7])
local lens, body, n, size, first = {}, {}, 0, 0, 0
-- The entries are fetched 1, 2, 4, ... 16 at a time, so that a Read
-- loads little more than it returns, whatever the entries hold.
local from, fetch, done = ARGV[5], 1, after >= tonumber(m[1])
while not done do
	local r = redis.call('XRANGE', KEYS[2], from, '+', 'COUNT', fetch)
	done = #r < fetch
	for _, e in ipairs(r) do
		local f, id = e[2], tonumber(string.sub(e[1], 3))
		if f[1] ~= 'n' then
			done = true
			break
		end
		local k, l, d, cut = tonumber(f[2]), f[4], f[6], false
		if n == 0 then
			l, d, first, k, cut = rest(l, d, id - k + 1, k, after, max)
		elseif n + k > count or size + #d > max then
			done = true
			break
		end
		n, size = n + k, size + #d
		lens[#lens + 1] = l
		body[#body + 1] = d
		from = '0-' .. (id + 1)
		if cut then
			done = true
			break
		end
	end
	fetch = math.min(2 * fetch, 16)
end
return {m[1], m[2], tostring(first), table.concat(lens, ','), table.concat(body), m[3] or '0'}
`)

// visitScript counts a reader's visit: the meta's seen, by Redis's clock,
// and the keys' TTLs, as a read does (touch first: see reserveScript).
// ARGV: ttl, gone.
var visitScript = newScript(prelude + `
if redis.call('EXISTS', KEYS[1]) == 0 then return missing() end
touch()
redis.call('HSET', KEYS[1], 'seen', now())
return 1
`)

// infoScript returns {owner, last, ended, ms since seen, ms since
// written}, both by the server's clock, so that replicas whose clocks
// differ agree on them; the last is false (nil) for a stream an older
// version wrote, with no written.
var infoScript = newScript(prelude + `
local m = redis.call('HMGET', KEYS[1], 'owner', 'last', 'ended', 'seen', 'written')
if not m[2] then return missing() end
m[4] = tostring(math.max(0, now() - tonumber(m[4])))
if m[5] then m[5] = tostring(math.max(0, now() - tonumber(m[5]))) end
return m
`)

// errEnded is an Append to an ended stream: nothing can follow its last
// event, so it is out of sequence.
var errEnded = errors.Join(ErrSequence, errors.New("resume: stream ended"))

// errBatch is the append script's refusal of a batch whose lengths do not
// match its bytes: a client's bug, never the store's state.
var errBatch = errors.New("resume: a batch of events whose lengths do not match its bytes")

// redisErr maps a script's refusal to this package's errors, Redis's own
// refusal past its maxmemory to ErrFull (a script refused so wrote
// nothing: Redis refuses its first write), and passes any other error on.
func redisErr(err error) error {
	if err == nil {
		return nil
	}
	code, rest, _ := strings.Cut(err.Error(), " ")
	switch code {
	case "SGNOTFOUND":
		return ErrNotFound
	case "SGEXPIRED": // the tombstone's owner hash, in hex
		if owner, err := hex.DecodeString(rest); err == nil {
			return &ExpiredError{Owner: owner}
		}
		return ErrExpired
	case "SGEXISTS":
		return ErrExists
	case "SGFULL":
		return ErrFull
	case "SGSEQUENCE":
		return ErrSequence
	case "SGENDED":
		return errEnded
	case "SGBATCH":
		return errBatch
	case "OOM": // Redis at its maxmemory, with noeviction: it writes nothing
		return errors.Join(ErrFull, err)
	}
	return err
}
