package roleserve

import (
	"context"
	"fmt"

	"google.golang.org/grpc"

	"metropolis.dev/metropolis/node"
	"metropolis.dev/metropolis/node/core/rpc"
	"metropolis.dev/metropolis/node/core/rpc/resolver"
	"metropolis.dev/osbase/supervisor"
)

// runConnection publishes CuratorConnection once the node has credentials
// in the cluster. The connection follows the curator leader: it is seeded
// with the curators the cluster manager knows of and with the node's own
// curator, which a consensus member reaches locally even before any other
// is reachable.
func (s *Service) runConnection(ctx context.Context) error {
	w := s.membership.Watch()
	defer w.Close()
	m, err := w.Get(ctx)
	if err != nil {
		return err
	}
	r := resolver.New(ctx, resolver.WithLogger(supervisor.Slog(ctx)))
	defer r.Close()
	local := resolver.NodeByHostPort(s.localCuratorHost(), node.CuratorServicePort)
	r.AddEndpoint(local)
	r.AddOverride(m.credentials.ID(), local)
	for _, host := range m.curatorHosts {
		r.AddEndpoint(resolver.NodeAtAddressWithDefaultPort(host))
	}
	creds := rpc.NewAuthenticatedCredentials(m.credentials.TLSCredentials(), rpc.WantRemoteCluster(m.credentials.ClusterCA()))
	conn, err := grpc.NewClient(resolver.Scheme+":///control",
		grpc.WithTransportCredentials(creds),
		grpc.WithResolvers(r),
		rpc.ClientKeepalive(),
	)
	if err != nil {
		return fmt.Errorf("connecting to the curator: %w", err)
	}
	defer conn.Close()
	s.CuratorConnection.Set(&CuratorConnection{Credentials: m.credentials, Conn: conn})
	supervisor.Logger(ctx).Infof("Connecting to the cluster as %s.", m.credentials.ID())
	supervisor.Signal(ctx, supervisor.SignalHealthy)
	<-ctx.Done()
	return ctx.Err()
}
