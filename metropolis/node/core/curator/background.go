package curator

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"time"

	"google.golang.org/protobuf/proto"

	"metropolis.dev/metropolis/node/core/consensus"
	ppb "metropolis.dev/metropolis/node/core/curator/proto/private"
	cpb "metropolis.dev/metropolis/proto/common"
	"metropolis.dev/osbase/supervisor"
)

// consensusSyncInterval is how often the leader reconciles ConsensusMember
// roles with etcd's membership.
const consensusSyncInterval = 5 * time.Second

// syncConsensus keeps ConsensusMember roles and etcd membership in step.
//
// Role changes change etcd's membership first and store the role after, so a
// failure in between leaves the two disagreeing; deleting a node that is
// still a member does too. etcd's membership is the truth: roles are made to
// follow it, and members without a node are removed. Each round makes at
// most one change, so that a misjudgement cannot sweep through the whole
// membership before anybody notices, and it changes nothing at all unless it
// finds its own node both as a node and as a member, which rules out
// comparing against the wrong cluster.
func (l *leadership) syncConsensus(ctx context.Context) error {
	supervisor.Signal(ctx, supervisor.SignalHealthy)
	ticker := time.NewTicker(consensusSyncInterval)
	defer ticker.Stop()
	for {
		select {
		case <-ticker.C:
		case <-ctx.Done():
			return ctx.Err()
		}
		if err := l.syncConsensusOnce(ctx); err != nil && ctx.Err() == nil {
			supervisor.Logger(ctx).Warningf("Reconciling consensus membership: %v", err)
		}
	}
}

var errSyncRefused = errors.New("refusing to change anything")

func (l *leadership) syncConsensusOnce(ctx context.Context) error {
	l.muNodes.Lock()
	defer l.muNodes.Unlock()

	// Members are listed before nodes: a node created in between is then
	// missing from the members, which is harmless, rather than a new member
	// missing from the nodes, which would get it removed.
	members, err := l.consensus.Members(ctx)
	if err != nil {
		return err
	}
	nodes, _, err := l.nodes.all(ctx)
	if err != nil {
		return err
	}
	memberByID := make(map[string]consensus.Member, len(members))
	for _, m := range members {
		if m.NodeID != "" {
			memberByID[m.NodeID] = m
		}
	}
	nodeByID := make(map[string]*cachedNode, len(nodes))
	for _, e := range nodes {
		nodeByID[e.id] = e
	}
	if _, ok := memberByID[l.nodeID]; !ok {
		return fmt.Errorf("%w: this node %s is not among the consensus members", errSyncRefused, l.nodeID)
	}
	if _, ok := nodeByID[l.nodeID]; !ok {
		return fmt.Errorf("%w: this node %s is not among the nodes", errSyncRefused, l.nodeID)
	}

	for _, m := range members {
		if m.NodeID == "" || nodeByID[m.NodeID] != nil {
			continue
		}
		supervisor.Logger(ctx).Infof("Removing consensus member %s, which is not a node of the cluster.", m.NodeID)
		if err := l.consensus.RemoveNode(ctx, m.NodeID); err != nil && !errors.Is(err, consensus.ErrNotMember) {
			return err
		}
		return nil
	}

	for _, e := range nodes {
		m, isMember := memberByID[e.id]
		hasRole := e.node.Roles.GetConsensusMember() != nil
		if isMember == hasRole {
			continue
		}
		n := proto.Clone(e.node).(*ppb.Node)
		if n.Roles == nil {
			n.Roles = &cpb.NodeRoles{}
		}
		if isMember {
			supervisor.Logger(ctx).Infof("Giving the ConsensusMember role to %s, which is a consensus member.", e.id)
			host, err := peerHost(m)
			if err != nil {
				return err
			}
			// For a member, AddNode only returns how to join.
			join, err := l.consensus.AddNode(ctx, e.id, n.PublicKey, host)
			if err != nil {
				return err
			}
			n.Roles.ConsensusMember = consensusMemberRole(join)
		} else {
			supervisor.Logger(ctx).Infof("Removing the ConsensusMember and KubernetesController roles from %s, which is not a consensus member.", e.id)
			n.Roles.ConsensusMember = nil
			n.Roles.KubernetesController = nil
		}
		return l.saveNode(ctx, n)
	}
	return nil
}

// peerHost returns the host a member is reached at by its peers.
func peerHost(m consensus.Member) (string, error) {
	if len(m.PeerURLs) == 0 {
		return "", fmt.Errorf("consensus member %s has no peer URL", m.NodeID)
	}
	u, err := url.Parse(m.PeerURLs[0])
	if err != nil {
		return "", fmt.Errorf("consensus member %s: %w", m.NodeID, err)
	}
	host, _, err := net.SplitHostPort(u.Host)
	if err != nil {
		return "", fmt.Errorf("consensus member %s: %w", m.NodeID, err)
	}
	return host, nil
}
