package watcher_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"metropolis.dev/metropolis/node/core/curator/curatortest"
	ipb "metropolis.dev/metropolis/node/core/curator/proto/api"
	"metropolis.dev/metropolis/node/core/curator/watcher"
	apb "metropolis.dev/metropolis/proto/api"
)

// recorder collects what a follower is told, for tests to wait on.
type recorder struct {
	mu      sync.Mutex
	nodes   map[string]*ipb.Node
	updates int
	deletes []string
	batches int
	changed chan struct{}
}

func newRecorder() *recorder {
	return &recorder{nodes: map[string]*ipb.Node{}, changed: make(chan struct{}, 1)}
}

func (r *recorder) notify() {
	select {
	case r.changed <- struct{}{}:
	default:
	}
}

func (r *recorder) follower() *watcher.NodesFollower {
	return &watcher.NodesFollower{
		OnUpdated: func(n *ipb.Node) error {
			r.mu.Lock()
			defer r.mu.Unlock()
			r.nodes[n.Id] = n
			r.updates++
			r.notify()
			return nil
		},
		OnDeleted: func(id string) error {
			r.mu.Lock()
			defer r.mu.Unlock()
			delete(r.nodes, id)
			r.deletes = append(r.deletes, id)
			r.notify()
			return nil
		},
		OnBatchDone: func() error {
			r.mu.Lock()
			defer r.mu.Unlock()
			r.batches++
			r.notify()
			return nil
		},
	}
}

// wait waits until cond holds for the recorder.
func (r *recorder) wait(t *testing.T, what string, cond func(r *recorder) bool) {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		r.mu.Lock()
		ok := cond(r)
		r.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-r.changed:
		case <-deadline:
			t.Fatalf("%s: not within 30s", what)
		}
	}
}

func TestWatchNodes(t *testing.T) {
	c := curatortest.New(t, curatortest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	a, err := c.AddNode(ctx, curatortest.NodeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.AddNode(ctx, curatortest.NodeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	conn, err := a.Conn()
	if err != nil {
		t.Fatal(err)
	}
	r := newRecorder()
	done := make(chan error, 1)
	watchCtx, stopWatching := context.WithCancel(ctx)
	go func() { done <- watcher.WatchNodes(watchCtx, ipb.NewCuratorClient(conn), r.follower()) }()

	r.wait(t, "initial state", func(r *recorder) bool { return r.batches >= 1 && len(r.nodes) == 3 })

	// While no curator serves, b disappears from etcd. The follower
	// reconnects and learns from the new initial state that b is gone.
	c.Curators[0].StopCurator()
	etcd, err := c.Etcd(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := etcd.Delete(ctx, "/nodes/"+b.ID); err != nil {
		t.Fatal(err)
	}
	c.Curators[0].StartCurator()
	r.wait(t, "deletion across reconnect", func(r *recorder) bool { return r.nodes[b.ID] == nil })

	// Changes after reconnecting arrive as usual, reported once each.
	r.mu.Lock()
	updates := r.updates
	r.mu.Unlock()
	if err := a.UpdateStatus(ctx, "192.0.2.1"); err != nil {
		t.Fatal(err)
	}
	r.wait(t, "status change", func(r *recorder) bool {
		return r.nodes[a.ID].GetStatus().GetExternalAddress() == "192.0.2.1"
	})
	r.mu.Lock()
	if r.updates != updates+1 {
		t.Errorf("%d updates for one change", r.updates-updates)
	}
	if len(r.deletes) != 1 {
		t.Errorf("deletions %v, want only %s", r.deletes, b.ID)
	}
	r.mu.Unlock()

	stopWatching()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("WatchNodes returned %v, want context.Canceled", err)
	}
}

func TestWatchNode(t *testing.T) {
	c := curatortest.New(t, curatortest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	a, err := c.AddNode(ctx, curatortest.NodeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.AddNode(ctx, curatortest.NodeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	conn, err := a.Conn()
	if err != nil {
		t.Fatal(err)
	}
	states := make(chan *ipb.Node, 10)
	errStop := errors.New("stop")
	done := make(chan error, 1)
	go func() {
		done <- watcher.WatchNode(ctx, ipb.NewCuratorClient(conn), b.ID, func(n *ipb.Node) error {
			states <- n
			if n == nil {
				return errStop
			}
			return nil
		})
	}()
	next := func() *ipb.Node {
		select {
		case n := <-states:
			return n
		case <-time.After(30 * time.Second):
			t.Fatal("no node state within 30s")
			return nil
		}
	}
	if n := next(); n == nil || n.Id != b.ID {
		t.Fatalf("first state %v, want node %s", n, b.ID)
	}
	yes := true
	if _, err := apb.NewManagementClient(c.OwnerConn()).UpdateNodeRoles(ctx, &apb.UpdateNodeRolesRequest{Node: &apb.UpdateNodeRolesRequest_Id{Id: b.ID}, KubernetesWorker: &yes}); err != nil {
		t.Fatal(err)
	}
	if n := next(); n.GetRoles().GetKubernetesWorker() == nil {
		t.Fatalf("state after role change %v, want KubernetesWorker", n)
	}
	if _, err := apb.NewManagementClient(c.OwnerConn()).DeleteNode(ctx, &apb.DeleteNodeRequest{
		Node:                          &apb.DeleteNodeRequest_Id{Id: b.ID},
		SafetyBypassHasRoles:          &apb.DeleteNodeRequest_SafetyBypassHasRoles{},
		SafetyBypassNotDecommissioned: &apb.DeleteNodeRequest_SafetyBypassNotDecommissioned{},
	}); err != nil {
		t.Fatal(err)
	}
	if n := next(); n != nil {
		t.Fatalf("state after deletion %v, want nil", n)
	}
	if err := <-done; !errors.Is(err, errStop) {
		t.Errorf("WatchNode returned %v, want the callback's error", err)
	}
}

// TestWatchPermissionDenied checks that watchers give up on errors that
// retrying cannot fix.
func TestWatchPermissionDenied(t *testing.T) {
	c := curatortest.New(t, curatortest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	nobody, err := c.UserCredentials(ctx, "nobody")
	if err != nil {
		t.Fatal(err)
	}
	conn, err := c.Dial(nobody)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	err = watcher.WatchNodes(ctx, ipb.NewCuratorClient(conn), newRecorder().follower())
	if err == nil || ctx.Err() != nil {
		t.Errorf("WatchNodes without permission returned %v", err)
	}
}
