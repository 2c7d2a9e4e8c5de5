package roleserve

import (
	"context"

	ipb "metropolis.dev/metropolis/node/core/curator/proto/api"
)

// runClusternet runs the node's side of the cluster network mesh
// (Config.Clusternet) once the node is a member of its cluster.
func (s *Service) runClusternet(ctx context.Context) error {
	if s.config.Clusternet == nil {
		return nil
	}
	conn, err := s.curatorConnection(ctx)
	if err != nil {
		return err
	}
	return s.config.Clusternet.Run(ctx, ipb.NewCuratorClient(conn.Conn), conn.Credentials.ID())
}
