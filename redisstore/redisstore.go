// Package redisstore keeps resumable streams in Redis Streams through
// go-redis: any replica that talks to the same Redis can resume a stream
// another began. It is its own module, so that streamguard itself never
// requires go-redis: the store is resume.RedisStore, in the core module,
// and this package hands it a go-redis client (standalone, Sentinel or
// Cluster: any redis.UniversalClient).
//
//	store := redisstore.New(redis.NewClient(&redis.Options{Addr: "redis:6379"}), redisstore.Config{})
//	defer store.Close()
//	h := middleware.NewHandler(model, middleware.ServerConfig{Resume: &middleware.ResumeConfig{Store: store}})
//
// See resume.RedisStore for the keys, the scripts, the expiry and the
// bounds.
package redisstore

import (
	"context"
	"errors"

	"github.com/redis/go-redis/v9"

	"github.com/streamguard/streamguard/resume"
)

// Config is the store's configuration (resume.RedisConfig).
type Config = resume.RedisConfig

// Store is the store (resume.RedisStore).
type Store = resume.RedisStore

// The store's defaults and bounds, as resume names them.
const (
	DefaultPrefix         = resume.DefaultRedisPrefix
	DefaultMaxLen         = resume.DefaultRedisMaxLen
	DefaultMaxStreamBytes = resume.DefaultRedisMaxStreamBytes
	MaxMaxLen             = resume.MaxRedisMaxLen
	MaxNameLen            = resume.MaxRedisNameLen
	MaxOwnerLen           = resume.MaxRedisOwnerLen
)

// New returns a store in the Redis that client talks to, with cfg's
// defaults filled in. The caller keeps the client, and closes it after
// the store's Close. The client's ReadTimeout must be over a second, as
// go-redis's default (3 s) is: the store's reads at a stream's live tail
// ask Redis to block for a second (XREAD BLOCK), and go-redis's Do, which
// the store sends them through, does not add the block to the read
// deadline as its typed XRead does; with a shorter one every such read
// fails with an i/o timeout.
func New(client redis.UniversalClient, cfg Config) *Store {
	return resume.NewRedisStore(Client{client}, cfg)
}

// Client adapts a go-redis client to resume.RedisClient: a nil reply
// (redis.Nil) is nil with no error.
type Client struct{ redis.UniversalClient }

// Do sends one command and returns its reply.
func (c Client) Do(ctx context.Context, args ...any) (any, error) {
	v, err := c.UniversalClient.Do(ctx, args...).Result()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	return v, err
}
