package roleserve

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"metropolis.dev/metropolis/node"
	ipb "metropolis.dev/metropolis/node/core/curator/proto/api"
	"metropolis.dev/metropolis/node/core/network"
	"metropolis.dev/metropolis/node/core/rpc"
	cpb "metropolis.dev/metropolis/proto/common"
	"metropolis.dev/metropolis/version"
	"metropolis.dev/osbase/event"
	"metropolis.dev/osbase/supervisor"
)

// Backoff between attempts to push a status the curator did not accept.
const (
	statusPushInitialBackoff = 500 * time.Millisecond
	statusPushMaxBackoff     = 10 * time.Second
)

// runStatusPush reports the node's status to the curator: its external
// address, whether it runs a curator, its version and its boot ID. It pushes
// again whenever any of these changes, and retries until the curator
// accepts. Nothing is pushed while the node has no address, which the
// curator would refuse.
func (s *Service) runStatusPush(ctx context.Context) error {
	bootID, err := readBootID(s.config.BootIDPath)
	if err != nil {
		return err
	}
	netC := make(chan *network.Status)
	cpC := make(chan *localControlPlane)
	connC := make(chan *CuratorConnection)
	err = supervisor.RunGroup(ctx, map[string]supervisor.Runnable{
		"map-network":      event.Pipe(s.config.Network, netC),
		"map-controlplane": event.Pipe[*localControlPlane](&s.localControlPlane, cpC),
		"map-connection":   event.Pipe[*CuratorConnection](&s.CuratorConnection, connC),
		"push": func(ctx context.Context) error {
			return s.pushStatus(ctx, bootID, netC, cpC, connC)
		},
	})
	if err != nil {
		return err
	}
	supervisor.Signal(ctx, supervisor.SignalHealthy)
	<-ctx.Done()
	return ctx.Err()
}

func (s *Service) pushStatus(ctx context.Context, bootID []byte, netC <-chan *network.Status, cpC <-chan *localControlPlane, connC <-chan *CuratorConnection) error {
	supervisor.Signal(ctx, supervisor.SignalHealthy)
	var (
		conn   *CuratorConnection
		pushed *cpb.NodeStatus
		// retry fires when a failed push is due to be tried again.
		retry   <-chan time.Time
		backoff = statusPushInitialBackoff
	)
	status := &cpb.NodeStatus{
		Version: &cpb.Version{Release: version.Version},
		BootId:  bootID,
	}
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case st := <-netC:
			status = proto.Clone(status).(*cpb.NodeStatus)
			status.ExternalAddress = ""
			if st != nil && st.ExternalAddress != nil {
				status.ExternalAddress = st.ExternalAddress.String()
			}
		case cp := <-cpC:
			status = proto.Clone(status).(*cpb.NodeStatus)
			status.RunningCurator = nil
			if cp != nil && cp.running {
				status.RunningCurator = &cpb.NodeStatus_RunningCurator{Port: node.CuratorServicePort}
			}
		case conn = <-connC:
			// A new connection, after a restart of its worker, deserves
			// the status again.
			pushed = nil
		case <-retry:
		}
		if conn == nil || status.ExternalAddress == "" || proto.Equal(status, pushed) {
			continue
		}
		retry = nil
		want := status
		if err := s.updateNodeStatus(ctx, conn, want); err != nil {
			supervisor.Logger(ctx).Warningf("Pushing node status failed, retrying in %v: %v", backoff, err)
			retry = time.After(backoff)
			backoff = min(2*backoff, statusPushMaxBackoff)
			continue
		}
		backoff = statusPushInitialBackoff
		pushed = want
		supervisor.Logger(ctx).Infof("Pushed node status: address %s, running curator: %v.", want.ExternalAddress, want.RunningCurator != nil)
	}
}

// updateNodeStatus pushes st to the curator leader. Until the leader's node
// has pushed its status, nobody can tell where the leader is, so a node
// running a curator that could be that leader, such as the node that just
// bootstrapped the cluster, also tries its own curator directly.
func (s *Service) updateNodeStatus(ctx context.Context, conn *CuratorConnection, st *cpb.NodeStatus) error {
	req := &ipb.UpdateNodeStatusRequest{NodeId: conn.Credentials.ID(), Status: st}
	_, err := ipb.NewCuratorClient(conn.Conn).UpdateNodeStatus(ctx, req)
	if err == nil || st.RunningCurator == nil {
		return err
	}
	creds := rpc.NewAuthenticatedCredentials(conn.Credentials.TLSCredentials(), rpc.WantRemoteCluster(conn.Credentials.ClusterCA()))
	local, lerr := grpc.NewClient(net.JoinHostPort(s.localCuratorHost(), strconv.Itoa(node.CuratorServicePort)), grpc.WithTransportCredentials(creds))
	if lerr != nil {
		return errors.Join(err, lerr)
	}
	defer local.Close()
	if _, lerr := ipb.NewCuratorClient(local).UpdateNodeStatus(ctx, req); lerr != nil {
		return fmt.Errorf("%w; local curator: %w", err, lerr)
	}
	return nil
}

// readBootID reads the kernel's boot ID, a UUID in text form, from path and
// returns its 16 bytes.
func readBootID(path string) ([]byte, error) {
	text, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading boot ID: %w", err)
	}
	id, err := parseBootID(string(text))
	if err != nil {
		return nil, fmt.Errorf("reading boot ID from %s: %w", path, err)
	}
	return id, nil
}

// parseBootID parses a boot ID such as
// "9f5d0d1c-1a2b-4c3d-8e9f-0a1b2c3d4e5f\n".
func parseBootID(text string) ([]byte, error) {
	text = strings.TrimSpace(text)
	groups := strings.Split(text, "-")
	lengths := []int{8, 4, 4, 4, 12}
	if len(groups) != len(lengths) {
		return nil, fmt.Errorf("boot ID %q is not a UUID", text)
	}
	for i, g := range groups {
		if len(g) != lengths[i] {
			return nil, fmt.Errorf("boot ID %q is not a UUID", text)
		}
	}
	id, err := hex.DecodeString(strings.Join(groups, ""))
	if err != nil {
		return nil, fmt.Errorf("boot ID %q is not a UUID: %w", text, err)
	}
	return id, nil
}
