package curator

import (
	"context"
	"errors"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"metropolis.dev/metropolis/node"
	ipb "metropolis.dev/metropolis/node/core/curator/proto/api"
)

// localServer implements CuratorLocal, served by every curator: it tells
// clients where the leader is.
type localServer struct {
	ipb.UnimplementedCuratorLocalServer
	service *Service
	etcd    *clientv3.Client
	// leader is set if this server runs on the leader.
	leader *leadership
}

func (s *localServer) GetCACertificate(context.Context, *ipb.GetCACertificateRequest) (*ipb.GetCACertificateResponse, error) {
	return &ipb.GetCACertificateResponse{
		IdentityCaCertificate: s.service.config.NodeCredentials.ClusterCA().Raw,
	}, nil
}

func (s *localServer) GetCurrentLeader(_ *ipb.GetCurrentLeaderRequest, srv grpc.ServerStreamingServer[ipb.GetCurrentLeaderResponse]) error {
	ctx := srv.Context()
	if s.leader != nil {
		// This server only lives as long as the leadership, so the answer
		// never changes.
		res, err := s.leaderInfo(ctx, s.leader.nodeID)
		if err != nil {
			return err
		}
		if err := srv.Send(res); err != nil {
			return err
		}
		<-ctx.Done()
		return nil
	}

	w := s.service.election.Watch()
	defer w.Close()
	var sent *ipb.GetCurrentLeaderResponse
	for {
		st, err := w.Get(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return status.Errorf(codes.Unavailable, "following election: %v", err)
		}
		var leaderID string
		switch {
		case st.otherLeader != nil:
			leaderID = st.otherLeader.NodeId
		case st.leader != nil:
			// This curator just became leader; its server for that role
			// replaces this one in a moment.
			leaderID = st.leader.nodeID
		default:
			continue
		}
		res, err := s.leaderInfo(ctx, leaderID)
		if err != nil {
			return err
		}
		if proto.Equal(res, sent) {
			continue
		}
		if err := srv.Send(res); err != nil {
			return err
		}
		sent = res
	}
}

// leaderInfo locates the leader id by the external address its node
// reported.
func (s *localServer) leaderInfo(ctx context.Context, id string) (*ipb.GetCurrentLeaderResponse, error) {
	n, err := nodeLoad(ctx, s.etcd, id)
	if errors.Is(err, errNodeNotFound) {
		return nil, status.Errorf(codes.Unavailable, "leader %s is not a node of the cluster", id)
	}
	if err != nil {
		return nil, rpcError(ctx, "locating leader", err)
	}
	host := n.Status.GetExternalAddress()
	if host == "" {
		return nil, status.Errorf(codes.Unavailable, "leader %s has not reported its address yet", id)
	}
	return &ipb.GetCurrentLeaderResponse{
		LeaderNodeId: id,
		LeaderHost:   host,
		LeaderPort:   node.CuratorServicePort,
		ThisNodeId:   s.service.config.NodeCredentials.ID(),
	}, nil
}
