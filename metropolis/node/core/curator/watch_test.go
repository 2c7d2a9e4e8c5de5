package curator_test

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"metropolis.dev/metropolis/node/core/curator/curatortest"
	ipb "metropolis.dev/metropolis/node/core/curator/proto/api"
	apb "metropolis.dev/metropolis/proto/api"
)

// recvEvent receives the next watch event, failing the test after a while.
func recvEvent(t *testing.T, stream ipb.Curator_WatchClient) *ipb.WatchEvent {
	t.Helper()
	type result struct {
		ev  *ipb.WatchEvent
		err error
	}
	c := make(chan result, 1)
	go func() {
		ev, err := stream.Recv()
		c <- result{ev, err}
	}()
	select {
	case r := <-c:
		if r.err != nil {
			t.Fatalf("receiving watch event: %v", r.err)
		}
		return r.ev
	case <-time.After(30 * time.Second):
		t.Fatalf("no watch event within 30s")
		return nil
	}
}

// TestWatchNode follows a single node from before it exists until it is
// deleted.
func TestWatchNode(t *testing.T) {
	t.Parallel()
	c := curatortest.New(t, curatortest.Options{})
	ctx := testContext(t)
	watcher := addNode(t, ctx, c, curatortest.NodeOptions{})
	n, err := c.NewNode(curatortest.NodeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	stream, err := nodeCurator(t, watcher).Watch(ctx, &ipb.WatchRequest{Kind: &ipb.WatchRequest_NodeInCluster_{NodeInCluster: &ipb.WatchRequest_NodeInCluster{NodeId: n.ID}}})
	if err != nil {
		t.Fatal(err)
	}
	// The watch waits for the node to exist.
	if _, err := n.Register(ctx); err != nil {
		t.Fatal(err)
	}
	ev := recvEvent(t, stream)
	if len(ev.Nodes) != 1 || ev.Nodes[0].Id != n.ID || ev.Nodes[0].State.String() != "NODE_STATE_NEW" {
		t.Fatalf("first event %v, want the NEW node", ev)
	}
	if err := c.Approve(ctx, n); err != nil {
		t.Fatal(err)
	}
	if ev := recvEvent(t, stream); ev.Nodes[0].State.String() != "NODE_STATE_STANDBY" {
		t.Fatalf("event after approval %v, want STANDBY", ev)
	}
	if _, err := management(c).DeleteNode(ctx, &apb.DeleteNodeRequest{Node: &apb.DeleteNodeRequest_Id{Id: n.ID}}); err != nil {
		t.Fatal(err)
	}
	ev = recvEvent(t, stream)
	if len(ev.Nodes) != 0 || len(ev.NodeTombstones) != 1 || ev.NodeTombstones[0].NodeId != n.ID {
		t.Fatalf("event after deletion %v, want a tombstone", ev)
	}

	_, err = nodeCurator(t, watcher).Watch(ctx, &ipb.WatchRequest{Kind: &ipb.WatchRequest_NodeInCluster_{NodeInCluster: &ipb.WatchRequest_NodeInCluster{NodeId: "nonsense"}}})
	if err == nil {
		s, _ := nodeCurator(t, watcher).Watch(ctx, &ipb.WatchRequest{Kind: &ipb.WatchRequest_NodeInCluster_{NodeInCluster: &ipb.WatchRequest_NodeInCluster{NodeId: "nonsense"}}})
		_, err = s.Recv()
	}
	wantCode(t, "watching malformed node ID", err, codes.InvalidArgument)
}

// TestWatchNodes follows all nodes: the initial state ends with exactly one
// PROGRESS_LAST_BACKLOGGED, then changes and deletions follow.
func TestWatchNodes(t *testing.T) {
	t.Parallel()
	c := curatortest.New(t, curatortest.Options{})
	ctx := testContext(t)
	var nodes []*curatortest.Node
	for i := 0; i < 5; i++ {
		nodes = append(nodes, addNode(t, ctx, c, curatortest.NodeOptions{}))
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := nodeCurator(t, nodes[0]).Watch(ctx, &ipb.WatchRequest{Kind: &ipb.WatchRequest_NodesInCluster_{NodesInCluster: &ipb.WatchRequest_NodesInCluster{}}})
	if err != nil {
		t.Fatal(err)
	}
	seen := make(map[string]*ipb.Node)
	for {
		ev := recvEvent(t, stream)
		if len(ev.NodeTombstones) != 0 {
			t.Errorf("tombstones in initial state: %v", ev.NodeTombstones)
		}
		for _, n := range ev.Nodes {
			seen[n.Id] = n
		}
		if ev.Progress == ipb.WatchEvent_PROGRESS_LAST_BACKLOGGED {
			break
		}
	}
	// The bootstrap node and the five added ones.
	if len(seen) != 6 {
		t.Errorf("initial state has %d nodes, want 6", len(seen))
	}
	for _, n := range nodes {
		if seen[n.ID] == nil || seen[n.ID].Status.GetExternalAddress() != n.Host {
			t.Errorf("initial state lacks %s with its address", n.ID)
		}
	}
	if seen[c.Curators[0].Node.ID].Roles.GetConsensusMember().GetPeerCertificate() == nil {
		t.Errorf("Watch does not show consensus credentials of the bootstrap node")
	}

	added := addNode(t, ctx, c, curatortest.NodeOptions{})
	if _, err := management(c).DeleteNode(ctx, &apb.DeleteNodeRequest{
		Node:                          &apb.DeleteNodeRequest_Id{Id: nodes[4].ID},
		SafetyBypassNotDecommissioned: &apb.DeleteNodeRequest_SafetyBypassNotDecommissioned{},
	}); err != nil {
		t.Fatal(err)
	}
	// The added node goes through several states; wait until it is UP
	// with its address and the deleted node is gone.
	deadline := time.Now().Add(30 * time.Second)
	for {
		ev := recvEvent(t, stream)
		if ev.Progress != ipb.WatchEvent_PROGRESS_UNSPECIFIED {
			t.Errorf("change event %v carries progress", ev)
		}
		for _, n := range ev.Nodes {
			seen[n.Id] = n
		}
		for _, tomb := range ev.NodeTombstones {
			delete(seen, tomb.NodeId)
		}
		a := seen[added.ID]
		if a != nil && a.Status.GetExternalAddress() == added.Host && seen[nodes[4].ID] == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("watch did not show the added and deleted node")
		}
	}
	if len(seen) != 6 {
		t.Errorf("watch shows %d nodes, want 6", len(seen))
	}
}
