package roleserve

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"net/netip"
	"slices"

	"google.golang.org/protobuf/proto"

	ipb "metropolis.dev/metropolis/node/core/curator/proto/api"
	"metropolis.dev/metropolis/node/core/curator/watcher"
	cpb "metropolis.dev/metropolis/proto/common"
	"metropolis.dev/osbase/supervisor"
)

// maxDirectoryNodes bounds the cluster directory kept on the ESP: enough
// curators to find one after a reboot, without the file growing with the
// cluster.
const maxDirectoryNodes = 15

// NodeNames is told the addresses of the cluster's nodes (see
// Config.NodeNames).
type NodeNames interface {
	// SetNodeAddresses replaces the known addresses with byID, which maps
	// node IDs to addresses. It must not keep byID.
	SetNodeAddresses(byID map[string]netip.Addr)
}

// runDirectory follows every node of the cluster. After each batch of
// changes, it hands their addresses to Config.NodeNames, and saves the
// consensus members (where curators run) as the cluster directory on the
// ESP, through which the cluster manager finds the cluster on the next
// boot: the directory written at enrolment names only the curators known
// then, which may all be gone by the time the node reboots.
func (s *Service) runDirectory(ctx context.Context) error {
	conn, err := s.curatorConnection(ctx)
	if err != nil {
		return err
	}
	supervisor.Signal(ctx, supervisor.SignalHealthy)
	log := supervisor.Logger(ctx)
	var saved []byte
	return watcher.WatchAllNodes(ctx, ipb.NewCuratorClient(conn.Conn), func(nodes map[string]*ipb.Node) error {
		if s.config.NodeNames != nil {
			s.config.NodeNames.SetNodeAddresses(nodeAddresses(nodes))
		}
		d := consensusDirectory(nodes)
		if len(d.Nodes) == 0 {
			// Keep what enrolment wrote rather than a directory
			// that would find nothing.
			return nil
		}
		b, err := proto.MarshalOptions{Deterministic: true}.Marshal(d)
		if err != nil {
			return fmt.Errorf("encoding the cluster directory: %w", err)
		}
		if bytes.Equal(b, saved) {
			return nil
		}
		if err := s.config.Storage.ESP.Metropolis.ClusterDirectory.Write(b, 0o644); err != nil {
			return fmt.Errorf("saving the cluster directory: %w", err)
		}
		saved = b
		log.Infof("Saved the cluster directory: %d node(s) running curators.", len(d.Nodes))
		return nil
	})
}

// nodeAddresses maps the IDs of nodes that reported an address to it.
func nodeAddresses(nodes map[string]*ipb.Node) map[string]netip.Addr {
	byID := make(map[string]netip.Addr, len(nodes))
	for id, n := range nodes {
		if addr, err := netip.ParseAddr(n.GetStatus().GetExternalAddress()); err == nil {
			byID[id] = addr
		}
	}
	return byID
}

// consensusDirectory lists the consensus members that reported an address,
// by ID, at most maxDirectoryNodes of them.
func consensusDirectory(nodes map[string]*ipb.Node) *cpb.ClusterDirectory {
	d := &cpb.ClusterDirectory{}
	for _, id := range slices.Sorted(maps.Keys(nodes)) {
		n := nodes[id]
		addr := n.GetStatus().GetExternalAddress()
		if n.GetRoles().GetConsensusMember() == nil || addr == "" {
			continue
		}
		d.Nodes = append(d.Nodes, &cpb.ClusterDirectory_Node{
			Id:        id,
			Addresses: []*cpb.ClusterDirectory_Node_Address{{Host: addr}},
		})
		if len(d.Nodes) == maxDirectoryNodes {
			break
		}
	}
	return d
}
