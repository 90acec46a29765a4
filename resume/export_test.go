package resume

import "time"

// SetRedisClock sets the clock of a Redis store's replica, for tests of
// replicas whose clocks differ.
func SetRedisClock(s *RedisStore, now func() time.Time) { s.now = now }
