package curator

import (
	"context"
	"crypto/x509"
	"fmt"
	"net"
	"strconv"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"

	"metropolis.dev/metropolis/node"
	ipb "metropolis.dev/metropolis/node/core/curator/proto/api"
	"metropolis.dev/metropolis/node/core/rpc"
	apb "metropolis.dev/metropolis/proto/api"
	"metropolis.dev/osbase/event"
	"metropolis.dev/osbase/supervisor"
)

// runListener serves the curator's gRPC APIs. As leader it serves all of
// them; as follower only CuratorLocal, through which clients find the
// leader. Whenever this curator gains or loses leadership, the server is
// replaced by one for the new role, which ends every call to the old one:
// nothing served by a former leader may outlive its leadership.
func (s *Service) runListener(ctx context.Context, cl *clientv3.Client) error {
	crls := make(chan *x509.RevocationList)
	if err := supervisor.Run(ctx, "crl", func(ctx context.Context) error { return s.followCRL(ctx, cl, crls) }); err != nil {
		return err
	}
	statuses := make(chan *electionStatus)
	if err := supervisor.Run(ctx, "election-status", event.Pipe[*electionStatus](&s.election, statuses)); err != nil {
		return err
	}
	// Serving before the revocation list is known would let revoked
	// certificates in.
	select {
	case crl := <-crls:
		s.crl.Store(crl)
	case <-ctx.Done():
		return ctx.Err()
	}
	var st *electionStatus
	select {
	case st = <-statuses:
	case <-ctx.Done():
		return ctx.Err()
	}

	address := net.JoinHostPort(s.config.ListenHost, strconv.Itoa(node.CuratorServicePort))
	healthy := false
	for {
		srv := s.newServer(ctx, cl, st)
		lis, err := net.Listen("tcp", address)
		if err != nil {
			return fmt.Errorf("listening on %s: %w", address, err)
		}
		served := make(chan error, 1)
		go func() { served <- srv.Serve(lis) }()
		if st.leader != nil {
			supervisor.Logger(ctx).Infof("Serving as leader on %s.", address)
		} else {
			supervisor.Logger(ctx).Infof("Serving as follower on %s.", address)
		}
		if !healthy {
			supervisor.Signal(ctx, supervisor.SignalHealthy)
			healthy = true
		}

		next, err := s.waitRoleChange(ctx, st, statuses, crls, served)
		srv.Stop()
		if err != nil {
			return err
		}
		st = next
	}
}

// waitRoleChange returns the first election status that changes what the
// server serves, while keeping the revocation list current.
func (s *Service) waitRoleChange(ctx context.Context, st *electionStatus, statuses <-chan *electionStatus, crls <-chan *x509.RevocationList, served <-chan error) (*electionStatus, error) {
	for {
		select {
		case next := <-statuses:
			if next.leader != st.leader {
				return next, nil
			}
		case crl := <-crls:
			s.crl.Store(crl)
		case err := <-served:
			return nil, fmt.Errorf("gRPC server stopped: %w", err)
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// newServer returns a gRPC server for the role st describes.
func (s *Service) newServer(ctx context.Context, cl *clientv3.Client, st *electionStatus) *grpc.Server {
	security := &rpc.ServerSecurity{
		NodeCredentials: s.config.NodeCredentials,
		RevocationList:  s.crl.Load,
	}
	opts := append(security.GRPCOptions(supervisor.Slog(ctx)),
		// Every node of the cluster keeps a connection to the leader, so
		// per-connection buffers dominate its memory (with gRPC's default
		// 32 KiB read buffer, 160 MB at 5,000 nodes). TLS already buffers
		// what it reads.
		grpc.ReadBufferSize(0),
	)
	srv := grpc.NewServer(opts...)
	ipb.RegisterCuratorLocalServer(srv, &localServer{service: s, etcd: cl, leader: st.leader})
	if l := st.leader; l != nil {
		ipb.RegisterCuratorServer(srv, &curatorServer{leadership: l})
		apb.RegisterManagementServer(srv, &managementServer{leadership: l})
		apb.RegisterAAAServer(srv, &aaaServer{leadership: l})
	}
	return srv
}

// followCRL sends every new revocation list of the cluster CA to crls.
func (s *Service) followCRL(ctx context.Context, cl *clientv3.Client, crls chan<- *x509.RevocationList) error {
	w := s.pki.ca.WatchCRL(cl)
	defer w.Close()
	supervisor.Signal(ctx, supervisor.SignalHealthy)
	for {
		crl, err := w.Get(ctx)
		if err != nil {
			return err
		}
		select {
		case crls <- crl:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
