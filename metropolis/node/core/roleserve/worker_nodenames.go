package roleserve

import (
	"context"
	"maps"
	"net/netip"

	ipb "metropolis.dev/metropolis/node/core/curator/proto/api"
	"metropolis.dev/metropolis/node/core/curator/watcher"
	"metropolis.dev/osbase/supervisor"
)

// NodeNames is told the addresses of the cluster's nodes (see
// Config.NodeNames).
type NodeNames interface {
	// SetNodeAddresses replaces the known addresses with byID, which maps
	// node IDs to addresses. It must not keep byID.
	SetNodeAddresses(byID map[string]netip.Addr)
}

// runNodeNames follows every node of the cluster and hands their addresses
// to Config.NodeNames, once per batch of changes.
func (s *Service) runNodeNames(ctx context.Context) error {
	if s.config.NodeNames == nil {
		supervisor.Signal(ctx, supervisor.SignalHealthy)
		supervisor.Signal(ctx, supervisor.SignalDone)
		return nil
	}
	conn, err := s.curatorConnection(ctx)
	if err != nil {
		return err
	}
	supervisor.Signal(ctx, supervisor.SignalHealthy)
	addresses := make(map[string]netip.Addr)
	changed := false
	return watcher.WatchNodes(ctx, ipb.NewCuratorClient(conn.Conn), &watcher.NodesFollower{
		OnUpdated: func(n *ipb.Node) error {
			addr, err := netip.ParseAddr(n.GetStatus().GetExternalAddress())
			if err != nil {
				// Not reachable yet: a node that has not reported
				// its status.
				if _, ok := addresses[n.Id]; ok {
					delete(addresses, n.Id)
					changed = true
				}
				return nil
			}
			if addresses[n.Id] != addr {
				addresses[n.Id] = addr
				changed = true
			}
			return nil
		},
		OnDeleted: func(id string) error {
			delete(addresses, id)
			changed = true
			return nil
		},
		OnBatchDone: func() error {
			if changed {
				s.config.NodeNames.SetNodeAddresses(maps.Clone(addresses))
				changed = false
			}
			return nil
		},
	})
}
