package roleserve

import (
	"context"
	"fmt"
	"time"

	ipb "metropolis.dev/metropolis/node/core/curator/proto/api"
	"metropolis.dev/osbase/supervisor"
)

// runHeartbeat sends heartbeats to the curator leader over one stream, one
// every HeartbeatInterval, each after the curator acknowledged the one
// before. The curator judges a node unhealthy after curator.HeartbeatTimeout
// (twice the interval) without one, so a single late or lost heartbeat does
// not make a healthy node look dead. When the stream breaks, as it does when
// the leader changes, the runnable fails and the supervisor opens a new one
// after its backoff.
func (s *Service) runHeartbeat(ctx context.Context) error {
	conn, err := s.curatorConnection(ctx)
	if err != nil {
		return err
	}
	stream, err := ipb.NewCuratorClient(conn.Conn).Heartbeat(ctx)
	if err != nil {
		return fmt.Errorf("opening heartbeat stream: %w", err)
	}
	supervisor.Signal(ctx, supervisor.SignalHealthy)
	ticker := time.NewTicker(s.config.HeartbeatInterval)
	defer ticker.Stop()
	for {
		if err := stream.Send(&ipb.HeartbeatUpdateRequest{}); err != nil {
			return fmt.Errorf("sending heartbeat: %w", err)
		}
		if _, err := stream.Recv(); err != nil {
			return fmt.Errorf("receiving heartbeat acknowledgement: %w", err)
		}
		select {
		case <-ticker.C:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
