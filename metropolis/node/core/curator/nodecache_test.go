package curator

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"

	ipb "metropolis.dev/metropolis/node/core/curator/proto/api"
	ppb "metropolis.dev/metropolis/node/core/curator/proto/private"
	cpb "metropolis.dev/metropolis/proto/common"
	"metropolis.dev/osbase/supervisor"
	"metropolis.dev/osbase/test/etcdtest"
)

func testNode(t *testing.T) *ppb.Node {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return &ppb.Node{PublicKey: pub, FsmState: cpb.NodeState_NODE_STATE_NEW}
}

// putNode stores n and tells the cache, as the leader's writes do.
func putNode(t *testing.T, cl *clientv3.Client, c *nodeCache, n *ppb.Node) {
	t.Helper()
	ops, err := nodePutOps(n)
	if err != nil {
		t.Fatal(err)
	}
	res, err := cl.Txn(context.Background()).Then(ops...).Commit()
	if err != nil {
		t.Fatal(err)
	}
	c.expect(res.Header.Revision)
}

func deleteNode(t *testing.T, cl *clientv3.Client, c *nodeCache, n *ppb.Node) {
	t.Helper()
	res, err := cl.Txn(context.Background()).Then(nodeDeleteOps(n)...).Commit()
	if err != nil {
		t.Fatal(err)
	}
	c.expect(res.Header.Revision)
}

func startCache(t *testing.T, cl *clientv3.Client, logLimit int) *nodeCache {
	c := newNodeCache(cl)
	if logLimit != 0 {
		c.logLimit = logLimit
	}
	supervisor.TestHarness(t, c.run)
	return c
}

func TestNodeCache(t *testing.T) {
	srv := etcdtest.Start(t)
	cl := srv.Client
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	existing := testNode(t)
	putNode(t, cl, newNodeCache(cl), existing)
	c := startCache(t, cl, 0)

	all, rev, err := c.all(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 1 || all[0].id != nodeIDOf(existing) {
		t.Fatalf("initial nodes %v, want the one stored before", all)
	}

	// Writes are visible as soon as the writer told the cache.
	added := testNode(t)
	putNode(t, cl, c, added)
	if e, err := c.get(ctx, nodeIDOf(added)); err != nil || e == nil {
		t.Fatalf("added node not found: %v", err)
	}

	changed, rev2, err := c.changesSince(ctx, rev)
	if err != nil {
		t.Fatal(err)
	}
	if len(changed) != 1 || changed[0].id != nodeIDOf(added) || rev2 <= rev {
		t.Fatalf("changes since %d: %v at %d, want the added node", rev, changed, rev2)
	}

	// Single-node watchers see each change, then the tombstone.
	id := nodeIDOf(added)
	e, err := c.nextNode(ctx, id, 0)
	if err != nil || e.node == nil {
		t.Fatalf("nextNode: %v, %v", e, err)
	}
	got := make(chan *cachedNode)
	go func() {
		e, _ := c.nextNode(ctx, id, e.rev)
		got <- e
	}()
	deleteNode(t, cl, c, added)
	select {
	case tomb := <-got:
		if tomb == nil || tomb.node != nil {
			t.Fatalf("after deletion got %v, want a tombstone", tomb)
		}
	case <-ctx.Done():
		t.Fatal("no tombstone")
	}
	changed, _, err = c.changesSince(ctx, rev2)
	if err != nil {
		t.Fatal(err)
	}
	if len(changed) != 1 || changed[0].node != nil {
		t.Errorf("changes after deletion %v, want a tombstone", changed)
	}
	if e, _ := c.get(ctx, id); e != nil {
		t.Errorf("deleted node still returned by get")
	}
	if all, _, _ := c.all(ctx); len(all) != 1 {
		t.Errorf("all returns %d nodes after deletion, want 1", len(all))
	}
}

// TestNodeCacheLaggingWatcher checks that a watcher that fell behind the
// change log still learns every change, including deletions.
func TestNodeCacheLaggingWatcher(t *testing.T) {
	srv := etcdtest.Start(t)
	cl := srv.Client
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c := startCache(t, cl, 10)
	_, rev, err := c.all(ctx)
	if err != nil {
		t.Fatal(err)
	}
	deleted := testNode(t)
	putNode(t, cl, c, deleted)
	deleteNode(t, cl, c, deleted)
	n := testNode(t)
	for i := 0; i < 30; i++ {
		n.Status = &cpb.NodeStatus{ExternalAddress: fmt.Sprintf("10.0.%d.%d", i/256%256, i%256)}
		ops, _ := nodePutOps(n)
		if _, err := cl.Txn(ctx).Then(ops...).Commit(); err != nil {
			t.Fatal(err)
		}
	}
	putNode(t, cl, c, n)
	if _, err := c.get(ctx, nodeIDOf(n)); err != nil {
		t.Fatal(err)
	}
	c.mu.Lock()
	floor := c.logFloor
	c.mu.Unlock()
	if floor <= rev {
		t.Fatalf("log floor %d not past the watcher's revision %d; test does not lag", floor, rev)
	}
	changed, _, err := c.changesSince(ctx, rev)
	if err != nil {
		t.Fatal(err)
	}
	if len(changed) != 2 {
		t.Fatalf("lagging watcher got %d changes, want 2", len(changed))
	}
	for _, e := range changed {
		switch e.id {
		case nodeIDOf(deleted):
			if e.node != nil {
				t.Errorf("deleted node not reported as tombstone")
			}
		case nodeIDOf(n):
			if e.node.Status.GetExternalAddress() != n.Status.ExternalAddress {
				t.Errorf("changed node reported in state %v, want the latest", e.node.Status)
			}
		}
	}
}

// TestNodeCacheReload checks that reading all nodes again, as the cache does
// after its watch failed (for example because etcd compacted the revisions
// it watched from), reports what changed in the gap.
func TestNodeCacheReload(t *testing.T) {
	srv := etcdtest.Start(t)
	cl := srv.Client
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := newNodeCache(cl)
	before := testNode(t)
	putNode(t, cl, c, before)
	res, err := cl.Get(ctx, nodePrefix, clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	c.load(ctx, res)
	// Between load and watch the world changes and is compacted.
	deleteNode(t, cl, c, before)
	after := testNode(t)
	putNode(t, cl, c, after)
	status, err := cl.Get(ctx, "x")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cl.Compact(ctx, status.Header.Revision); err != nil {
		t.Fatal(err)
	}
	res2, err := cl.Get(ctx, nodePrefix, clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	c.load(ctx, res2)
	changed, _, err := c.changesSince(ctx, res.Header.Revision)
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]bool{}
	for _, e := range changed {
		ids[e.id] = e.node != nil
	}
	if exists, ok := ids[nodeIDOf(before)]; !ok || exists {
		t.Errorf("node deleted during the gap not reported as tombstone: %v", ids)
	}
	if exists, ok := ids[nodeIDOf(after)]; !ok || !exists {
		t.Errorf("node added during the gap not reported: %v", ids)
	}
}

// fakeWatchStream collects what a Watch handler sends.
type fakeWatchStream struct {
	grpc.ServerStream
	events []*ipb.WatchEvent
}

func (s *fakeWatchStream) Send(ev *ipb.WatchEvent) error {
	s.events = append(s.events, proto.Clone(ev).(*ipb.WatchEvent))
	return nil
}
func (s *fakeWatchStream) Context() context.Context     { return context.Background() }
func (s *fakeWatchStream) SetHeader(metadata.MD) error  { return nil }
func (s *fakeWatchStream) SendHeader(metadata.MD) error { return nil }
func (s *fakeWatchStream) SetTrailer(metadata.MD)       {}

// TestSendNodesChunking checks that large states are split into events
// under the size limit, with exactly one end of backlog.
func TestSendNodesChunking(t *testing.T) {
	var nodes []*cachedNode
	for i := 0; i < 300; i++ {
		n := testNode(t)
		n.Labels = &cpb.NodeLabels{}
		for j := 0; j < 128; j++ {
			n.Labels.Pairs = append(n.Labels.Pairs, &cpb.NodeLabels_Pair{Key: fmt.Sprintf("key-%03d-%s", j, strings.Repeat("k", 50)), Value: strings.Repeat("v", 63)})
		}
		nodes = append(nodes, newCachedNode(nodeIDOf(n), 0, n))
	}
	nodes = append(nodes, &cachedNode{id: "metropolis-00000000000000000000000000000000"})
	s := &fakeWatchStream{}
	if err := sendNodes(s, nodes, true); err != nil {
		t.Fatal(err)
	}
	if len(s.events) < 2 {
		t.Fatalf("%d events, want the state split into several", len(s.events))
	}
	total, tombstones := 0, 0
	for i, ev := range s.events {
		if size := proto.Size(ev); size > maxWatchEventSize {
			t.Errorf("event %d is %d bytes, over the limit of %d", i, size, maxWatchEventSize)
		}
		if last := i == len(s.events)-1; (ev.Progress == ipb.WatchEvent_PROGRESS_LAST_BACKLOGGED) != last {
			t.Errorf("event %d of %d has progress %s", i, len(s.events), ev.Progress)
		}
		total += len(ev.Nodes)
		tombstones += len(ev.NodeTombstones)
	}
	if total != 300 || tombstones != 1 {
		t.Errorf("sent %d nodes and %d tombstones, want 300 and 1", total, tombstones)
	}

	// An empty backlog still ends with its marker.
	s = &fakeWatchStream{}
	if err := sendNodes(s, nil, true); err != nil {
		t.Fatal(err)
	}
	if len(s.events) != 1 || s.events[0].Progress != ipb.WatchEvent_PROGRESS_LAST_BACKLOGGED {
		t.Errorf("empty backlog sent %v", s.events)
	}
	// Nothing to say is not said.
	s = &fakeWatchStream{}
	if err := sendNodes(s, nil, false); err != nil || len(s.events) != 0 {
		t.Errorf("empty change sent %v, %v", s.events, err)
	}
}
