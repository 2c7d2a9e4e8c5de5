package roleserve

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"metropolis.dev/metropolis/node/core/curator"
	"metropolis.dev/metropolis/node/core/curator/curatortest"
	ipb "metropolis.dev/metropolis/node/core/curator/proto/api"
	"metropolis.dev/metropolis/node/core/identity"
	"metropolis.dev/metropolis/node/core/localstorage"
	"metropolis.dev/metropolis/node/core/network"
	apb "metropolis.dev/metropolis/proto/api"
	cpb "metropolis.dev/metropolis/proto/common"
	"metropolis.dev/osbase/event"
	"metropolis.dev/osbase/event/memory"
	"metropolis.dev/osbase/supervisor"
)

// testBootID is the boot ID the tests' nodes report.
const testBootID = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"

var testBootIDBytes = []byte{0x0f, 0x1e, 0x2d, 0x3c, 0x4b, 0x5a, 0x69, 0x78, 0x87, 0x96, 0xa5, 0xb4, 0xc3, 0xd2, 0xe1, 0xf0}

// testNode is a Role Server under test with what it runs on.
type testNode struct {
	svc     *Service
	storage *localstorage.Root
	network *memory.Value[*network.Status]
}

// newTestNode returns a Role Server with its own storage tree and a boot
// ID file, not yet running. Its address is address.
func newTestNode(t *testing.T, address string, mutate func(*Config)) *testNode {
	t.Helper()
	// Below the system's temporary directory rather than t.TempDir, as
	// etcd's socket path must stay short.
	dir, err := os.MkdirTemp("", "roleserve-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	root, err := localstorage.New(filepath.Join(dir, "root"))
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []interface{ MkdirAll(os.FileMode) error }{&root.Data.Node, &root.Ephemeral.Consensus, &root.ESP.Metropolis} {
		if err := d.MkdirAll(0o700); err != nil {
			t.Fatal(err)
		}
	}
	bootID := filepath.Join(dir, "boot_id")
	if err := os.WriteFile(bootID, []byte(testBootID+"\n"), 0o444); err != nil {
		t.Fatal(err)
	}
	n := &testNode{storage: root, network: &memory.Value[*network.Status]{}}
	n.network.Set(&network.Status{ExternalAddress: net.ParseIP(address)})
	cfg := Config{
		Storage:    root,
		Network:    n.network,
		BootIDPath: bootID,
		// No curator runs here; tests that run one set their own.
		ControlPlaneHost: "127.0.0.1",
	}
	if mutate != nil {
		mutate(&cfg)
	}
	n.svc = New(cfg)
	return n
}

// start runs the Role Server until the test ends.
func (n *testNode) start(t *testing.T) {
	supervisor.TestHarness(t, n.svc.Run, supervisor.WithBackoff(50*time.Millisecond, time.Second))
}

// curatorDirectory lists the curators of c.
func curatorDirectory(c *curatortest.Cluster) *cpb.ClusterDirectory {
	d := &cpb.ClusterDirectory{}
	for _, cur := range c.Curators {
		d.Nodes = append(d.Nodes, &cpb.ClusterDirectory_Node{
			Id:        cur.Node.ID,
			Addresses: []*cpb.ClusterDirectory_Node_Address{{Host: cur.Host}},
		})
	}
	return d
}

// joinedNode adds a node to c and runs a Role Server for it, as the
// cluster manager would after the node registered.
func joinedNode(t *testing.T, ctx context.Context, c *curatortest.Cluster, address string, mutate func(*Config)) (*testNode, *curatortest.Node) {
	t.Helper()
	cn, err := c.AddNode(ctx, curatortest.NodeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	n := newTestNode(t, address, mutate)
	n.start(t)
	n.svc.ProvideRegisterData(cn.NodeCredentials(), curatorDirectory(c))
	return n, cn
}

// getNode returns the node id as the owner sees it.
func getNode(ctx context.Context, c *curatortest.Cluster, id string) (*apb.Node, error) {
	stream, err := apb.NewManagementClient(c.OwnerConn()).GetNodes(ctx, &apb.GetNodesRequest{Filter: fmt.Sprintf("node.id == %q", id)})
	if err != nil {
		return nil, err
	}
	var found *apb.Node
	for {
		n, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		found = n
	}
	if found == nil {
		return nil, fmt.Errorf("node %s not found", id)
	}
	return found, nil
}

// eventually calls f every 50 ms until it returns nil, failing the test
// with f's last error after timeout.
func eventually(t *testing.T, timeout time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %v", timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestStatusPushAndHeartbeat(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c := curatortest.New(t, curatortest.Options{})
	n, cn := joinedNode(t, ctx, c, "10.200.0.7", nil)

	eventually(t, 30*time.Second, func() error {
		node, err := getNode(ctx, c, cn.ID)
		if err != nil {
			return err
		}
		st := node.Status
		switch {
		case st.GetExternalAddress() != "10.200.0.7":
			return fmt.Errorf("external address %q, want 10.200.0.7", st.GetExternalAddress())
		case !bytes.Equal(st.GetBootId(), testBootIDBytes):
			return fmt.Errorf("boot ID %x, want %x", st.GetBootId(), testBootIDBytes)
		case st.GetVersion().GetRelease() == "":
			return errors.New("no version")
		case st.GetRunningCurator() != nil:
			return errors.New("reports a running curator, but runs none")
		}
		return nil
	})

	// A changed address is pushed again.
	n.network.Set(&network.Status{ExternalAddress: net.ParseIP("10.200.0.8")})
	eventually(t, 30*time.Second, func() error {
		node, err := getNode(ctx, c, cn.ID)
		if err != nil {
			return err
		}
		if got := node.Status.GetExternalAddress(); got != "10.200.0.8" {
			return fmt.Errorf("external address %q, want 10.200.0.8", got)
		}
		return nil
	})

	// Only heartbeats make a node healthy.
	eventually(t, 30*time.Second, func() error {
		node, err := getNode(ctx, c, cn.ID)
		if err != nil {
			return err
		}
		if node.Health != apb.Node_HEALTH_HEALTHY {
			return fmt.Errorf("health %s, want HEALTHY", node.Health)
		}
		return nil
	})
}

func TestRolesFetchedAndPersisted(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c := curatortest.New(t, curatortest.Options{})
	n, cn := joinedNode(t, ctx, c, "10.200.0.9", nil)
	mgmt := apb.NewManagementClient(c.OwnerConn())

	w := n.svc.LocalRoles.Watch()
	defer w.Close()
	for _, worker := range []bool{true, false} {
		if _, err := mgmt.UpdateNodeRoles(ctx, &apb.UpdateNodeRolesRequest{
			Node:             &apb.UpdateNodeRolesRequest_Id{Id: cn.ID},
			KubernetesWorker: &worker,
		}); err != nil {
			t.Fatalf("UpdateNodeRoles: %v", err)
		}
		wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
		roles, err := w.Get(wctx, event.Filter(func(r *cpb.NodeRoles) bool { return (r.KubernetesWorker != nil) == worker }))
		wcancel()
		if err != nil {
			t.Fatalf("waiting for LocalRoles with KubernetesWorker=%v: %v", worker, err)
		}
		// Published roles are persisted first.
		file := &n.storage.Data.Node.Roles
		b, err := file.Read()
		if err != nil {
			t.Fatalf("reading persisted roles: %v", err)
		}
		var persisted cpb.NodeRoles
		if err := proto.Unmarshal(b, &persisted); err != nil {
			t.Fatalf("persisted roles: %v", err)
		}
		if !proto.Equal(&persisted, roles) {
			t.Errorf("persisted roles %v, published %v", &persisted, roles)
		}
		fi, err := os.Stat(file.FullPath())
		if err != nil {
			t.Fatal(err)
		}
		if mode := fi.Mode().Perm(); mode != 0o400 {
			t.Errorf("roles file mode %v, want 0400", mode)
		}
	}
}

// TestRolesColdStart checks that a node publishes its persisted roles
// while no curator is reachable, as after a cold start of the cluster.
func TestRolesColdStart(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c := curatortest.New(t, curatortest.Options{})
	cn, err := c.AddNode(ctx, curatortest.NodeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	n := newTestNode(t, "10.200.0.10", nil)
	want := &cpb.NodeRoles{KubernetesWorker: &cpb.NodeRoles_KubernetesWorker{}}
	b, err := proto.Marshal(want)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.storage.Data.Node.Roles.Write(b, 0o400); err != nil {
		t.Fatal(err)
	}
	n.start(t)
	// No curator in the directory, and none runs locally.
	n.svc.ProvideJoinData(cn.NodeCredentials(), &cpb.ClusterDirectory{})
	w := n.svc.LocalRoles.Watch()
	defer w.Close()
	wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
	defer wcancel()
	got, err := w.Get(wctx)
	if err != nil {
		t.Fatalf("waiting for LocalRoles: %v", err)
	}
	if !proto.Equal(got, want) {
		t.Errorf("LocalRoles %v, want the persisted %v", got, want)
	}
}

func TestDefaultHeartbeatInterval(t *testing.T) {
	s := New(Config{})
	if got := s.config.HeartbeatInterval; got != curator.HeartbeatInterval {
		t.Errorf("default heartbeat interval %v, want curator.HeartbeatInterval (%v)", got, curator.HeartbeatInterval)
	}
	if curator.HeartbeatTimeout < 2*s.config.HeartbeatInterval {
		t.Errorf("heartbeat interval %v leaves no room for a late heartbeat within the timeout %v", s.config.HeartbeatInterval, curator.HeartbeatTimeout)
	}
}

// TestHeartbeatInterval measures the interval between heartbeats as the
// curator observes them: the time of the last heartbeat, from the
// time_since_heartbeat the curator reports, sampled much more often than
// heartbeats are sent.
func TestHeartbeatInterval(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const interval = 300 * time.Millisecond
	c := curatortest.New(t, curatortest.Options{})
	_, cn := joinedNode(t, ctx, c, "10.200.0.11", func(cfg *Config) { cfg.HeartbeatInterval = interval })

	var beats []time.Time
	deadline := time.Now().Add(time.Minute)
	for len(beats) < 8 && time.Now().Before(deadline) {
		before := time.Now()
		node, err := getNode(ctx, c, cn.ID)
		if err != nil {
			t.Fatal(err)
		}
		after := time.Now()
		if node.Health == apb.Node_HEALTH_HEALTHY {
			// The curator computed the duration somewhere between before
			// and after; take the middle.
			at := before.Add(after.Sub(before) / 2).Add(-node.TimeSinceHeartbeat.AsDuration())
			if len(beats) == 0 || at.Sub(beats[len(beats)-1]) > interval/2 {
				beats = append(beats, at)
			}
		}
		time.Sleep(interval / 15)
	}
	if len(beats) < 8 {
		t.Fatalf("saw %d heartbeats within a minute, want 8", len(beats))
	}
	// The first one seen may be from before sampling started.
	var gaps []time.Duration
	for i := 2; i < len(beats); i++ {
		gaps = append(gaps, beats[i].Sub(beats[i-1]))
	}
	slices.Sort(gaps)
	median := gaps[len(gaps)/2]
	if median < interval*8/10 || median > interval*15/10 {
		t.Errorf("median interval between heartbeats %v (all: %v), want about %v", median, gaps, interval)
	}
}

// TestBootstrap bootstraps a cluster through the Role Server: the control
// plane worker starts consensus and curator, and the node ends up UP with
// the control plane roles, reporting its curator.
func TestBootstrap(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	host := randomLoopback(t)
	n := newTestNode(t, host, func(cfg *Config) { cfg.ControlPlaneHost = host })
	n.start(t)
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	joinPub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ownerPub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	cuk := make([]byte, 32)
	rand.Read(cuk)
	n.svc.ProvideBootstrapData(&BootstrapData{
		NodeKey:          key,
		JoinKey:          joinPub,
		ClusterUnlockKey: cuk,
		StorageSecurity:  cpb.NodeStorageSecurity_NODE_STORAGE_SECURITY_AUTHENTICATED_ENCRYPTED,
		TPMUsage:         cpb.NodeTPMUsage_NODE_TPM_USAGE_NOT_PRESENT,
		OwnerPublicKey:   ownerPub,
		Configuration: &cpb.ClusterConfiguration{
			TpmMode: cpb.ClusterConfiguration_TPM_MODE_DISABLED,
		},
	})
	id := identity.NodeID(key.Public().(ed25519.PublicKey))

	cw := n.svc.CuratorConnection.Watch()
	defer cw.Close()
	conn, err := cw.Get(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if conn.Credentials.ID() != id {
		t.Fatalf("connection as %s, want %s", conn.Credentials.ID(), id)
	}
	saved, err := identity.ReadNodeCredentials(n.storage.Data.Node.Credentials.FullPath())
	if err != nil {
		t.Fatalf("credentials not saved: %v", err)
	}
	if saved.ID() != id {
		t.Errorf("saved credentials of %s, want %s", saved.ID(), id)
	}

	rw := n.svc.LocalRoles.Watch()
	defer rw.Close()
	if _, err := rw.Get(ctx, event.Filter(func(r *cpb.NodeRoles) bool {
		return r.ConsensusMember != nil && r.KubernetesController != nil
	})); err != nil {
		t.Fatalf("waiting for the control plane roles: %v", err)
	}
	cur := ipb.NewCuratorClient(conn.Conn)
	eventually(t, time.Minute, func() error {
		stream, err := cur.Watch(ctx, &ipb.WatchRequest{Kind: &ipb.WatchRequest_NodeInCluster_{NodeInCluster: &ipb.WatchRequest_NodeInCluster{NodeId: id}}})
		if err != nil {
			return err
		}
		ev, err := stream.Recv()
		if err != nil {
			return err
		}
		if len(ev.Nodes) != 1 {
			return fmt.Errorf("first watch event has %d nodes, want 1", len(ev.Nodes))
		}
		node := ev.Nodes[0]
		switch {
		case node.State != cpb.NodeState_NODE_STATE_UP:
			return fmt.Errorf("node is %s, want UP", node.State)
		case node.Status.GetRunningCurator() == nil:
			return errors.New("node does not report its curator")
		case node.Status.GetExternalAddress() != host:
			return fmt.Errorf("node reports address %q, want %s", node.Status.GetExternalAddress(), host)
		}
		return nil
	})
}

// randomLoopback picks an address in 127.0.0.0/8 that no other test
// binary's cluster is likely to use.
func randomLoopback(t *testing.T) string {
	v, err := rand.Int(rand.Reader, big.NewInt(200*250))
	if err != nil {
		t.Fatal(err)
	}
	i := int(v.Int64())
	return fmt.Sprintf("127.%d.%d.%d", 255, i/250+1, i%250+1)
}

func TestParseBootID(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []byte
	}{
		{testBootID + "\n", testBootIDBytes},
		{testBootID, testBootIDBytes},
		{"", nil},
		{"0f1e2d3c4b5a69788796a5b4c3d2e1f0", nil},
		{"0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1fz", nil},
		{"0f1e2d3c-4b5a-6978-8796a-5b4c3d2e1f0", nil},
	} {
		got, err := parseBootID(tc.in)
		if tc.want == nil {
			if err == nil {
				t.Errorf("parseBootID(%q) = %x, want error", tc.in, got)
			}
			continue
		}
		if err != nil || !bytes.Equal(got, tc.want) {
			t.Errorf("parseBootID(%q) = %x, %v, want %x", tc.in, got, err, tc.want)
		}
	}
}

func FuzzParseBootID(f *testing.F) {
	f.Add(testBootID + "\n")
	f.Add("")
	f.Add("----")
	f.Fuzz(func(t *testing.T, in string) {
		id, err := parseBootID(in)
		if err == nil && len(id) != 16 {
			t.Fatalf("parseBootID(%q) = %x, not 16 bytes", in, id)
		}
	})
}
