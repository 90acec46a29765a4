package resume

import (
	"context"
	"time"
)

// SetRedisClock sets the clock of a Redis store's replica, for tests of
// replicas whose clocks differ.
func SetRedisClock(s *RedisStore, now func() time.Time) { s.now = now }

// AppendRaw runs the append script of a Redis store as a client whose batch
// is given as the script takes it: count events, their lengths ("12,7")
// and their bytes end to end.
func AppendRaw(ctx context.Context, s *RedisStore, stream string, first uint64, count int, lens, body string) error {
	keys := s.keys(stream)
	_, err := appendScript.run(ctx, s.rdb, keys, s.ttl, s.gone, s.maxLen, first, count, lens, body, s.maxBytes)
	return err
}
