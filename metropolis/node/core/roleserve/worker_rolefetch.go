package roleserve

import (
	"context"
	"errors"
	"fmt"
	"os"

	"google.golang.org/protobuf/proto"

	ipb "metropolis.dev/metropolis/node/core/curator/proto/api"
	"metropolis.dev/metropolis/node/core/curator/watcher"
	cpb "metropolis.dev/metropolis/proto/common"
	"metropolis.dev/osbase/supervisor"
)

// rolesFileMode keeps the persisted roles, which hold the consensus peer
// certificate, readable only by the node itself, and protects them from
// accidental writes: they are only ever replaced whole.
const rolesFileMode = 0o400

// runRoleFetch publishes the node's roles in LocalRoles. Once the node is a
// member of the cluster, it first publishes the roles persisted on the data
// partition on an earlier boot, if any, so that a consensus member starts
// its etcd member without waiting for a curator, which on a cold-started
// cluster only runs once enough etcd members do. It then follows the node's
// record in the cluster, and persists and publishes every change of its
// roles.
func (s *Service) runRoleFetch(ctx context.Context) error {
	conn, err := s.curatorConnection(ctx)
	if err != nil {
		return err
	}
	file := &s.config.Storage.Data.Node.Roles
	persisted, err := s.loadRoles()
	if err != nil {
		return err
	}
	if persisted != nil {
		supervisor.Logger(ctx).Infof("Loaded persisted roles: %s", describeRoles(persisted))
		s.LocalRoles.Set(persisted)
	}
	supervisor.Signal(ctx, supervisor.SignalHealthy)

	last := persisted
	id := conn.Credentials.ID()
	return watcher.WatchNode(ctx, ipb.NewCuratorClient(conn.Conn), id, func(n *ipb.Node) error {
		if n == nil {
			// The node was deleted from the cluster. Its roles stay as they
			// were: running on is all a deleted node can do until it is
			// reinstalled, and its consensus member, if any, is removed by
			// the cluster.
			supervisor.Logger(ctx).Warningf("This node was deleted from the cluster.")
			return nil
		}
		roles := n.Roles
		if roles == nil {
			roles = &cpb.NodeRoles{}
		}
		if last != nil && proto.Equal(roles, last) {
			return nil
		}
		b, err := proto.Marshal(roles)
		if err != nil {
			return fmt.Errorf("encoding roles: %w", err)
		}
		if err := file.Write(b, rolesFileMode); err != nil {
			return fmt.Errorf("persisting roles: %w", err)
		}
		supervisor.Logger(ctx).Infof("Roles changed: %s", describeRoles(roles))
		last = roles
		s.LocalRoles.Set(roles)
		return nil
	})
}

// loadRoles reads the persisted roles, nil if there are none.
func (s *Service) loadRoles() (*cpb.NodeRoles, error) {
	file := &s.config.Storage.Data.Node.Roles
	b, err := file.Read()
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading persisted roles: %w", err)
	}
	var roles cpb.NodeRoles
	if err := proto.Unmarshal(b, &roles); err != nil {
		return nil, fmt.Errorf("persisted roles in %s are damaged: %w", file.FullPath(), err)
	}
	return &roles, nil
}

// describeRoles names the roles for logs.
func describeRoles(r *cpb.NodeRoles) string {
	var names []string
	if r.ConsensusMember != nil {
		names = append(names, "ConsensusMember")
	}
	if r.KubernetesController != nil {
		names = append(names, "KubernetesController")
	}
	if r.KubernetesWorker != nil {
		names = append(names, "KubernetesWorker")
	}
	if len(names) == 0 {
		return "none"
	}
	return fmt.Sprint(names)
}
