package resume

import "context"

// End marks a stream complete and wakes its readers. It is idempotent.
func (s *RedisStore) End(ctx context.Context, stream string) error { return s.end(ctx, stream, 0) }

// EndTruncated marks a stream ended short of its end and wakes its
// readers. It is idempotent.
func (s *RedisStore) EndTruncated(ctx context.Context, stream string) error {
	return s.end(ctx, stream, 1)
}

func (s *RedisStore) end(ctx context.Context, stream string, cut int) error {
	if !validRedisName(stream) {
		return ErrNotFound
	}
	if _, err := endScript.run(ctx, s.rdb, s.keys(stream), s.ttl, s.gone, cut); err != nil {
		return err
	}
	s.touchMu.Lock()
	delete(s.touched, stream)
	s.touchMu.Unlock()
	// Now Create may evict it.
	_, err := endedScript.run(ctx, s.rdb, []string{s.live, s.ended}, stream, s.deadline(s.now()))
	return err
}

// Delete forgets a stream (see Store.Delete): its keys go, tombstone
// included, and its name leaves the sets that count streams.
func (s *RedisStore) Delete(ctx context.Context, stream string) error {
	if !validRedisName(stream) {
		return nil
	}
	k := s.keys(stream)
	if _, err := s.rdb.Do(ctx, "DEL", k[0], k[1], k[2]); err != nil {
		return err
	}
	s.touchMu.Lock()
	delete(s.touched, stream)
	s.touchMu.Unlock()
	_, err := forgetScript.run(ctx, s.rdb, []string{s.live, s.ended}, stream)
	return err
}
