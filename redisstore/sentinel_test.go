package redisstore

import (
	"bytes"
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/streamguard/streamguard/internal/redistest"
	"github.com/streamguard/streamguard/resume/resumetest"
)

// TestSentinelFailover runs the store through go-redis's Sentinel client
// across a failover: a stream written to the master and replicated
// (WAIT), the replica promoted (SENTINEL FAILOVER), the same stream
// written on at the new master, its script cache flushed, and read back
// whole: every event once and in order, with the
// store's key and the stream's owner as they were. (Events that Redis had
// not replicated when its master fell are lost: replication is
// asynchronous, as the README says; this test waits for it.)
func TestSentinelFailover(t *testing.T) {
	rs := redistest.StartSentinel(t)
	sentinel := redis.NewSentinelClient(&redis.Options{Addr: rs.SentinelAddr})
	t.Cleanup(func() { sentinel.Close() })
	c := redis.NewFailoverClient(&redis.FailoverOptions{MasterName: rs.MasterName, SentinelAddrs: []string{rs.SentinelAddr}})
	t.Cleanup(func() { c.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s := newStore(t, c, Config{})
	key, err := s.Key(ctx)
	if err != nil {
		t.Fatal(err)
	}
	name := resumetest.Name()
	if err := s.Create(ctx, name, []byte("owner")); err != nil {
		t.Fatal(err)
	}
	if err := s.Append(ctx, name, events(name, 1, 50)); err != nil {
		t.Fatal(err)
	}
	if n, err := c.Do(ctx, "WAIT", 1, 10_000).Int(); err != nil || n != 1 {
		t.Fatalf("WAIT: %d replicas, %v", n, err)
	}

	// The Sentinel must know the replica before it can promote it.
	eventually(t, ctx, "the Sentinel to fail the master over", func() bool {
		return sentinel.Failover(ctx, rs.MasterName).Err() == nil
	})
	eventually(t, ctx, "the Sentinel to name the replica master", func() bool {
		addr, err := sentinel.GetMasterAddrByName(ctx, rs.MasterName).Result()
		return err == nil && len(addr) == 2 && addr[0]+":"+addr[1] == rs.Replica
	})
	// Until go-redis hears of the switch, its pooled connections still go
	// to the old master, which still takes writes until the Sentinel has
	// made it a replica: writes in that window are lost with its data.
	_, replicaPort, _ := net.SplitHostPort(rs.Replica)
	eventually(t, ctx, "the client to talk to the new master", func() bool {
		port, err := c.ConfigGet(ctx, "port").Result()
		return err == nil && port["port"] == replicaPort
	})

	// Redis 7 replicates the scripts a master has loaded: flush them at
	// the new master, as one that restarted or was never a replica
	// would have none.
	promoted := redis.NewClient(&redis.Options{Addr: rs.Replica})
	defer promoted.Close()
	if err := promoted.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	if err := s.Append(ctx, name, events(name, 51, 100)); err != nil {
		t.Fatalf("Append at the new master: %v", err)
	}
	if info, err := promoted.Info(ctx, "memory").Result(); err != nil || strings.Contains(info, "number_of_cached_scripts:0\r") {
		t.Fatalf("the new master has no script after the Append (%v): it never ran there", err)
	}
	if err := s.End(ctx, name); err != nil {
		t.Fatal(err)
	}
	evs := resumetest.ReadAll(t, s, name, 0)
	if len(evs) != 100 {
		t.Fatalf("read %d events, want 100", len(evs))
	}
	for i, e := range evs {
		if want := resumetest.Event(name, uint64(i+1)); e.Seq != want.Seq || !bytes.Equal(e.Data, want.Data) {
			t.Fatalf("event %d: %d %q", i, e.Seq, e.Data)
		}
	}
	if k, err := s.Key(ctx); err != nil || !bytes.Equal(k, key) {
		t.Fatalf("the store's key changed across the failover (%v): replicas would no longer check each other's streams", err)
	}
	if info, err := s.Info(ctx, name); err != nil || string(info.Owner) != "owner" || !info.Ended || info.Last != 100 {
		t.Fatalf("Info: %+v %v", info, err)
	}
}

// eventually polls cond every 50 ms until it holds, failing the test when
// ctx ends first.
func eventually(t *testing.T, ctx context.Context, what string, cond func() bool) {
	t.Helper()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("waiting for %s: %v", what, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}
