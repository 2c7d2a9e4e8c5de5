// Package watcher follows nodes through the curator's Watch API on behalf of
// node services: a node following its own record (its roles), or services
// following every node (the cluster network, metrics discovery).
//
// Watch streams end whenever the curator leader changes. Everything a
// follower needs to survive that lives here, so that its users only see node
// states: streams are reopened with backoff, the states a new stream repeats
// are not reported again, and nodes that vanished while no stream was open
// are reported as deleted once the new stream's initial state shows them
// missing.
package watcher

import (
	"context"
	"errors"
	"fmt"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	ipb "metropolis.dev/metropolis/node/core/curator/proto/api"
)

// Backoff between attempts to reopen a failed stream.
const (
	initialBackoff = 100 * time.Millisecond
	maxBackoff     = 5 * time.Second
)

// permanent reports whether a stream error will not go away by retrying.
func permanent(err error) bool {
	switch status.Code(err) {
	case codes.InvalidArgument, codes.PermissionDenied, codes.Unauthenticated, codes.Unimplemented:
		return true
	}
	return false
}

// follow opens streams with open and hands each to consume until ctx is
// done, consume fails with a callback error, or a stream fails permanently.
// consume reports whether it received anything, which resets the backoff.
func follow(ctx context.Context, open func(ctx context.Context) (ipb.Curator_WatchClient, error), consume func(ipb.Curator_WatchClient) (bool, error)) error {
	backoff := initialBackoff
	for {
		streamCtx, cancel := context.WithCancel(ctx)
		stream, err := open(streamCtx)
		received := false
		if err == nil {
			received, err = consume(stream)
		}
		cancel()
		var cbErr *callbackError
		switch {
		case errors.As(err, &cbErr):
			return cbErr.err
		case ctx.Err() != nil:
			return ctx.Err()
		case permanent(err):
			return fmt.Errorf("watching nodes: %w", err)
		}
		if received {
			backoff = initialBackoff
		}
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
			return ctx.Err()
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

// callbackError wraps errors returned by callbacks, which end following.
type callbackError struct{ err error }

func (e *callbackError) Error() string { return e.err.Error() }

// WatchNode follows the node id. It calls onChange with every new state of
// the node, and with nil once the node is deleted. It waits for nodes that
// do not exist yet. It returns when ctx is done (ctx.Err()), when onChange
// returns an error (that error), or when the curator refuses the watch for
// good (for example for lack of permission).
func WatchNode(ctx context.Context, cur ipb.CuratorClient, id string, onChange func(*ipb.Node) error) error {
	var last *ipb.Node
	deleted := false
	req := &ipb.WatchRequest{Kind: &ipb.WatchRequest_NodeInCluster_{NodeInCluster: &ipb.WatchRequest_NodeInCluster{NodeId: id}}}
	return follow(ctx, func(ctx context.Context) (ipb.Curator_WatchClient, error) {
		return cur.Watch(ctx, req)
	}, func(stream ipb.Curator_WatchClient) (bool, error) {
		received := false
		for {
			ev, err := stream.Recv()
			if err != nil {
				return received, err
			}
			received = true
			for _, n := range ev.Nodes {
				if n.Id != id || (!deleted && proto.Equal(n, last)) {
					continue
				}
				last, deleted = n, false
				if err := onChange(n); err != nil {
					return received, &callbackError{err}
				}
			}
			for _, t := range ev.NodeTombstones {
				if t.NodeId != id || last == nil || deleted {
					continue
				}
				deleted = true
				if err := onChange(nil); err != nil {
					return received, &callbackError{err}
				}
			}
		}
	})
}

// NodesFollower receives the state of all nodes from WatchNodes. Errors
// returned by its callbacks end WatchNodes.
type NodesFollower struct {
	// Filter, if set, selects the nodes to follow. A node that stops
	// matching is reported as deleted, one that starts matching as new.
	Filter func(*ipb.Node) bool
	// OnUpdated is called for every node that is new or changed.
	OnUpdated func(*ipb.Node) error
	// OnDeleted is called for every node that was deleted.
	OnDeleted func(id string) error
	// OnBatchDone, if set, is called once the nodes of the initial state
	// (after each reconnect), and then of each further event, have been
	// reported, for followers that act on the whole set rather than on
	// every node.
	OnBatchDone func() error
}

// WatchAllNodes follows all nodes and calls onBatch with all of them, by
// ID, after every batch of changes (see NodesFollower.OnBatchDone), for
// followers that act on the whole set. onBatch must not keep the map,
// which changes after it returns. It returns like WatchNode.
func WatchAllNodes(ctx context.Context, cur ipb.CuratorClient, onBatch func(map[string]*ipb.Node) error) error {
	nodes := make(map[string]*ipb.Node)
	return WatchNodes(ctx, cur, &NodesFollower{
		OnUpdated: func(n *ipb.Node) error {
			nodes[n.Id] = n
			return nil
		},
		OnDeleted: func(id string) error {
			delete(nodes, id)
			return nil
		},
		OnBatchDone: func() error { return onBatch(nodes) },
	})
}

// WatchNodes follows all nodes, reporting them to f. It returns like
// WatchNode.
func WatchNodes(ctx context.Context, cur ipb.CuratorClient, f *NodesFollower) error {
	known := make(map[string]*ipb.Node)
	req := &ipb.WatchRequest{Kind: &ipb.WatchRequest_NodesInCluster_{NodesInCluster: &ipb.WatchRequest_NodesInCluster{}}}
	return follow(ctx, func(ctx context.Context) (ipb.Curator_WatchClient, error) {
		return cur.Watch(ctx, req)
	}, func(stream ipb.Curator_WatchClient) (bool, error) {
		// Until the initial state is complete, remember which nodes it
		// contains; the rest of what was known is gone.
		backlog := make(map[string]bool)
		inBacklog := true
		received := false
		for {
			ev, err := stream.Recv()
			if err != nil {
				return received, err
			}
			received = true
			for _, n := range ev.Nodes {
				if inBacklog {
					backlog[n.Id] = true
				}
				if err := f.update(known, n); err != nil {
					return received, &callbackError{err}
				}
			}
			for _, t := range ev.NodeTombstones {
				if err := f.delete(known, t.NodeId); err != nil {
					return received, &callbackError{err}
				}
			}
			if inBacklog && ev.Progress != ipb.WatchEvent_PROGRESS_LAST_BACKLOGGED {
				continue
			}
			if inBacklog {
				inBacklog = false
				for id := range known {
					if !backlog[id] {
						if err := f.delete(known, id); err != nil {
							return received, &callbackError{err}
						}
					}
				}
			}
			if f.OnBatchDone != nil {
				if err := f.OnBatchDone(); err != nil {
					return received, &callbackError{err}
				}
			}
		}
	})
}

func (f *NodesFollower) update(known map[string]*ipb.Node, n *ipb.Node) error {
	if f.Filter != nil && !f.Filter(n) {
		return f.delete(known, n.Id)
	}
	if proto.Equal(known[n.Id], n) {
		return nil
	}
	known[n.Id] = n
	return f.OnUpdated(n)
}

func (f *NodesFollower) delete(known map[string]*ipb.Node, id string) error {
	if _, ok := known[id]; !ok {
		return nil
	}
	delete(known, id)
	return f.OnDeleted(id)
}
