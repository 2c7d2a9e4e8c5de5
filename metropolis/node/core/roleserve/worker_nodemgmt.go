package roleserve

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"google.golang.org/grpc"

	"metropolis.dev/metropolis/node"
	"metropolis.dev/metropolis/node/core/rpc"
	"metropolis.dev/osbase/supervisor"
)

// nodeManagementStopGrace is how long calls in flight, such as the Reboot
// that stopped the node, may take to finish when the service stops.
const nodeManagementStopGrace = 2 * time.Second

// runNodeManagement serves NodeManagement on node.NodeManagementPort once
// the node has credentials in its cluster: callers authenticate against the
// cluster's CA, and what they may do is decided per call by package rpc.
func (s *Service) runNodeManagement(ctx context.Context) error {
	if s.config.NodeManagement == nil {
		supervisor.Signal(ctx, supervisor.SignalHealthy)
		supervisor.Signal(ctx, supervisor.SignalDone)
		return nil
	}
	w := s.membership.Watch()
	defer w.Close()
	m, err := w.Get(ctx)
	if err != nil {
		return err
	}
	// Without the cluster's revocation list: only users are allowed
	// NodeManagement calls, and the cluster revokes only node
	// certificates so far.
	security := &rpc.ServerSecurity{NodeCredentials: m.credentials}
	srv := grpc.NewServer(security.GRPCOptions(supervisor.Slog(ctx))...)
	s.config.NodeManagement.Register(srv)
	addr := net.JoinHostPort(s.config.ControlPlaneHost, strconv.Itoa(node.NodeManagementPort))
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listening for node management on %s: %w", addr, err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(lis) }()
	supervisor.Logger(ctx).Infof("Serving node management on %s.", lis.Addr())
	supervisor.Signal(ctx, supervisor.SignalHealthy)
	select {
	case err := <-served:
		return fmt.Errorf("node management server stopped: %w", err)
	case <-ctx.Done():
	}
	stopped := make(chan struct{})
	go func() {
		srv.GracefulStop()
		close(stopped)
	}()
	select {
	case <-stopped:
	case <-time.After(nodeManagementStopGrace):
		srv.Stop()
	}
	if err := <-served; err != nil && !errors.Is(err, grpc.ErrServerStopped) {
		return err
	}
	return ctx.Err()
}
