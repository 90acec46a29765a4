package redisstore

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/streamguard/streamguard/resume"
	"github.com/streamguard/streamguard/resume/resumetest"
)

// clusterClient returns a client of the Redis Cluster whose nodes
// $STREAMGUARD_REDIS_CLUSTER lists (host:port,host:port,...). The test
// skips when that is unset, and fails when $CI is set too: CI starts a
// cluster of three masters.
func clusterClient(t *testing.T) *redis.ClusterClient {
	t.Helper()
	addrs := resumetest.Server(t, "STREAMGUARD_REDIS_CLUSTER", "a redis cluster's nodes' host:port, comma-separated")
	c := redis.NewClusterClient(&redis.ClusterOptions{Addrs: strings.Split(addrs, ",")})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.ForEachShard(ctx, func(ctx context.Context, n *redis.Client) error { return n.Ping(ctx).Err() }); err != nil {
		c.Close()
		t.Fatalf("redis cluster at %s: %v", addrs, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestClusterConformance runs the store contract on a Redis Cluster, and
// the loss of every node's script cache.
func TestClusterConformance(t *testing.T) {
	c := clusterClient(t)
	resumetest.Run(t, func(t *testing.T) resume.Store { return newStore(t, c, Config{}) })
	resumetest.ScriptsFlushed(t, newStore(t, c, Config{}), func(ctx context.Context) error {
		return c.ForEachMaster(ctx, func(ctx context.Context, n *redis.Client) error { return n.ScriptFlush(ctx).Err() })
	})
}

// TestClusterReplicas: two replicas, each with its own cluster client,
// share streams whose keys the cluster spreads over its masters: a stream
// written by one reads back whole at the other.
func TestClusterReplicas(t *testing.T) {
	a := newStore(t, clusterClient(t), Config{})
	cb := clusterClient(t)
	b := newStore(t, cb, Config{Prefix: a.Config().Prefix})
	ctx := tctx(t)
	var names []string
	for range 24 {
		name := resumetest.Name()
		names = append(names, name)
		if err := a.Create(ctx, name, []byte("owner")); err != nil {
			t.Fatal(err)
		}
		if err := a.Append(ctx, name, events(name, 1, 40)); err != nil {
			t.Fatal(err)
		}
		if err := a.End(ctx, name); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range names {
		if evs := resumetest.ReadAll(t, b, name, 7); len(evs) != 33 || evs[32].Seq != 40 {
			t.Fatalf("replica B read %d events of %s", len(evs), name)
		}
	}
	var masters atomic.Int32 // ForEachMaster calls in parallel
	cb.ForEachMaster(ctx, func(ctx context.Context, n *redis.Client) error {
		var cursor uint64
		for range 10_000 {
			keys, next, err := n.Scan(ctx, cursor, a.Config().Prefix+"s:*", 1000).Result()
			if err != nil {
				return err
			}
			if len(keys) > 0 {
				masters.Add(1)
				return nil
			}
			if cursor = next; cursor == 0 {
				return nil
			}
		}
		return nil
	})
	if n := masters.Load(); n < 2 {
		t.Fatalf("the streams' keys are on %d master(s): the cluster did not spread them", n)
	}
}
