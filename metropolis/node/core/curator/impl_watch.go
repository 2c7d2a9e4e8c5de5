package curator

import (
	"context"

	"google.golang.org/grpc"

	ipb "metropolis.dev/metropolis/node/core/curator/proto/api"
)

// maxWatchEventSize bounds the encoded size of one WatchEvent, well below
// gRPC's default 4 MiB message limit, so that even a cluster with many large
// node records streams its state in several events instead of failing.
const maxWatchEventSize = 2 << 20

func (s *curatorServer) Watch(req *ipb.WatchRequest, srv grpc.ServerStreamingServer[ipb.WatchEvent]) error {
	ctx := srv.Context()
	switch kind := req.Kind.(type) {
	case *ipb.WatchRequest_NodeInCluster_:
		id := kind.NodeInCluster.GetNodeId()
		if err := validateNodeID(id); err != nil {
			return invalidArgument("node_in_cluster.node_id: %v", err)
		}
		return s.watchNode(ctx, id, srv)
	case *ipb.WatchRequest_NodesInCluster_:
		return s.watchNodes(ctx, srv)
	default:
		return invalidArgument("kind missing: set node_in_cluster or nodes_in_cluster")
	}
}

// watchNode streams one node: an event once it exists, one per change, and
// a tombstone when it is deleted. It waits for nodes that do not exist yet.
func (s *curatorServer) watchNode(ctx context.Context, id string, srv grpc.ServerStreamingServer[ipb.WatchEvent]) error {
	var rev int64
	exists := false
	for {
		e, err := s.nodes.nextNode(ctx, id, rev)
		if err != nil {
			return rpcError(ctx, "watching node", err)
		}
		rev = e.rev
		ev := &ipb.WatchEvent{}
		switch {
		case e.node != nil:
			ev.Nodes = []*ipb.Node{e.curator}
			exists = true
		case exists:
			ev.NodeTombstones = []*ipb.WatchEvent_NodeTombstone{{NodeId: id}}
			exists = false
		default:
			// Deleted before this watcher ever saw it.
			continue
		}
		if err := srv.Send(ev); err != nil {
			return err
		}
	}
}

// watchNodes streams all nodes: their current state, in events of bounded
// size of which the last carries PROGRESS_LAST_BACKLOGGED, then every
// change.
func (s *curatorServer) watchNodes(ctx context.Context, srv grpc.ServerStreamingServer[ipb.WatchEvent]) error {
	nodes, rev, err := s.nodes.all(ctx)
	if err != nil {
		return rpcError(ctx, "watching nodes", err)
	}
	if err := sendNodes(srv, nodes, true); err != nil {
		return err
	}
	for {
		var changed []*cachedNode
		changed, rev, err = s.nodes.changesSince(ctx, rev)
		if err != nil {
			return rpcError(ctx, "watching nodes", err)
		}
		if len(changed) == 0 {
			continue
		}
		if err := sendNodes(srv, changed, false); err != nil {
			return err
		}
	}
}

// sendNodes sends nodes (and tombstones) in as few events as the size limit
// allows. If backlog is set, the last event is marked as the end of the
// backlog, even when there are no nodes at all.
func sendNodes(srv grpc.ServerStreamingServer[ipb.WatchEvent], nodes []*cachedNode, backlog bool) error {
	ev := &ipb.WatchEvent{}
	size := 0
	for _, e := range nodes {
		var entry int
		if e.node != nil {
			entry = e.curatorSize
		} else {
			entry = len(e.id) + 8
		}
		if size > 0 && size+entry > maxWatchEventSize {
			if err := srv.Send(ev); err != nil {
				return err
			}
			ev, size = &ipb.WatchEvent{}, 0
		}
		if e.node != nil {
			ev.Nodes = append(ev.Nodes, e.curator)
		} else {
			ev.NodeTombstones = append(ev.NodeTombstones, &ipb.WatchEvent_NodeTombstone{NodeId: e.id})
		}
		// Field tags and lengths of repeated entries.
		size += entry + 8
	}
	if backlog {
		ev.Progress = ipb.WatchEvent_PROGRESS_LAST_BACKLOGGED
	} else if size == 0 {
		return nil
	}
	return srv.Send(ev)
}
