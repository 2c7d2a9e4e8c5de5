package roleserve

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"metropolis.dev/metropolis/node"
	"metropolis.dev/metropolis/node/core/curator/curatortest"
	"metropolis.dev/metropolis/node/core/mgmt"
	"metropolis.dev/metropolis/node/core/rpc"
	apb "metropolis.dev/metropolis/proto/api"
	cpb "metropolis.dev/metropolis/proto/common"
	"metropolis.dev/osbase/logtree"
)

// recordedNames keeps what the Role Server last told NodeNames.
type recordedNames struct {
	mu   sync.Mutex
	byID map[string]netip.Addr
}

func (r *recordedNames) SetNodeAddresses(byID map[string]netip.Addr) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.byID = byID
}

func (r *recordedNames) get(id string) (netip.Addr, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	a, ok := r.byID[id]
	return a, ok
}

// TestNodeManagementAndNames checks that a member node serves
// NodeManagement with its cluster credentials, to the owner, learns the
// addresses of the cluster's nodes by ID, and saves the nodes running
// curators as its cluster directory.
func TestNodeManagementAndNames(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c := curatortest.New(t, curatortest.Options{})
	lt := logtree.New()
	lt.MustLeveledFor("root.probe").Info("hello from the node")
	host := randomLoopback(t)
	names := &recordedNames{}
	n, cn := joinedNode(t, ctx, c, host, func(cfg *Config) {
		cfg.ControlPlaneHost = host
		cfg.NodeManagement = &mgmt.Service{LogTree: lt}
		cfg.NodeNames = names
	})

	eventually(t, 30*time.Second, func() error {
		addr, ok := names.get(cn.ID)
		if !ok || addr.String() != host {
			return fmt.Errorf("the node's own name resolves to %v (known: %v), want %s", addr, ok, host)
		}
		if addr, ok := names.get(c.Curators[0].Node.ID); !ok || addr.String() != c.Curators[0].Host {
			return fmt.Errorf("the curator node's name resolves to %v (known: %v), want %s", addr, ok, c.Curators[0].Host)
		}
		return nil
	})

	eventually(t, 30*time.Second, func() error {
		b, err := n.storage.ESP.Metropolis.ClusterDirectory.Read()
		if err != nil {
			return err
		}
		var d cpb.ClusterDirectory
		if err := proto.Unmarshal(b, &d); err != nil {
			return err
		}
		want := curatorDirectory(c)
		if !proto.Equal(&d, want) {
			return fmt.Errorf("saved cluster directory %v, want %v", &d, want)
		}
		return nil
	})

	creds := rpc.NewAuthenticatedCredentials(c.Owner, rpc.WantRemoteCluster(c.CA))
	conn, err := grpc.NewClient(net.JoinHostPort(host, strconv.Itoa(node.NodeManagementPort)), grpc.WithTransportCredentials(creds))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	eventually(t, 30*time.Second, func() error {
		stream, err := apb.NewNodeManagementClient(conn).Logs(ctx, &apb.GetLogsRequest{
			Dn:          "root.probe",
			BacklogMode: apb.GetLogsRequest_BACKLOG_MODE_ALL,
			StreamMode:  apb.GetLogsRequest_STREAM_MODE_DISABLE,
		})
		if err != nil {
			return err
		}
		res, err := stream.Recv()
		if err != nil {
			return err
		}
		if len(res.BacklogEntries) != 1 || res.BacklogEntries[0].GetLeveled().GetLines()[0] != "hello from the node" {
			return fmt.Errorf("got %v, want the probe's entry", res.BacklogEntries)
		}
		return nil
	})
}
