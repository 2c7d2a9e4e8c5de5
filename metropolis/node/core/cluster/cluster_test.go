package cluster

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"metropolis.dev/metropolis/node/core/curator"
	"metropolis.dev/metropolis/node/core/curator/curatortest"
	"metropolis.dev/metropolis/node/core/identity"
	"metropolis.dev/metropolis/node/core/localstorage"
	"metropolis.dev/metropolis/node/core/localstorage/crypt"
	"metropolis.dev/metropolis/node/core/network"
	"metropolis.dev/metropolis/node/core/roleserve"
	apb "metropolis.dev/metropolis/proto/api"
	cpb "metropolis.dev/metropolis/proto/common"
	ppb "metropolis.dev/metropolis/proto/private"
	"metropolis.dev/osbase/event/memory"
	"metropolis.dev/osbase/supervisor"
	"metropolis.dev/osbase/tpm"
)

// fakeData stands in for the data partition, which needs a block device,
// device-mapper and mkfs (localstorage tests it in a VM). It keeps the
// key the partition was "formatted" with and, like the real one, writes
// the sealed configuration holding the node unlock key, and refuses to
// mount with any other key.
type fakeData struct {
	root *localstorage.Root

	mu       sync.Mutex
	key      []byte
	security cpb.NodeStorageSecurity
	mounts   int
}

func (f *fakeData) MountNew(ctx context.Context, security cpb.NodeStorageSecurity, t *tpm.TPM) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var nuk, cuk []byte
	if security != cpb.NodeStorageSecurity_NODE_STORAGE_SECURITY_INSECURE {
		nuk, cuk = make([]byte, crypt.KeySize), make([]byte, crypt.KeySize)
		rand.Read(nuk)
		rand.Read(cuk)
		key, err := crypt.DataKey(nuk, cuk)
		if err != nil {
			return nil, err
		}
		f.key = key
	}
	f.security = security
	if err := f.root.Data.Node.MkdirAll(0o700); err != nil {
		return nil, err
	}
	if err := f.root.ESP.Metropolis.SealedConfiguration.Seal(&ppb.SealedConfiguration{NodeUnlockKey: nuk, StorageSecurity: security}, t); err != nil {
		return nil, err
	}
	f.mounts++
	return cuk, nil
}

func (f *fakeData) MountExisting(ctx context.Context, sc *ppb.SealedConfiguration, cuk []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if sc.StorageSecurity != f.security {
		return fmt.Errorf("mounting as %s, but formatted as %s", sc.StorageSecurity, f.security)
	}
	if f.security != cpb.NodeStorageSecurity_NODE_STORAGE_SECURITY_INSECURE {
		key, err := crypt.DataKey(sc.NodeUnlockKey, cuk)
		if err != nil {
			return err
		}
		if subtle.ConstantTimeCompare(key, f.key) != 1 {
			return crypt.ErrWrongKey
		}
	}
	f.mounts++
	return nil
}

// testNode is a node's storage, kept across its boots.
type testNode struct {
	root *localstorage.Root
	data *fakeData
}

func newTestNode(t *testing.T) *testNode {
	dir, err := os.MkdirTemp("", "cluster-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	root, err := localstorage.New(filepath.Join(dir, "root"))
	if err != nil {
		t.Fatal(err)
	}
	if err := root.ESP.Metropolis.MkdirAll(0o700); err != nil {
		t.Fatal(err)
	}
	return &testNode{root: root, data: &fakeData{root: root}}
}

// boot runs a Role Server and a cluster Manager for the node until stop is
// called, and returns the Role Server.
func (n *testNode) boot(t *testing.T, params *apb.NodeParameters) (rs *roleserve.Service, stop func()) {
	netStatus := &memory.Value[*network.Status]{}
	netStatus.Set(&network.Status{ExternalAddress: net.ParseIP("10.201.0.1")})
	rs = roleserve.New(roleserve.Config{
		Storage:          n.root,
		Network:          netStatus,
		ControlPlaneHost: "127.0.0.1",
	})
	m := New(Config{
		Storage:        n.root,
		Data:           n.data,
		Parameters:     params,
		RoleServer:     rs,
		CommitInterval: 100 * time.Millisecond,
	})
	stop, _ = supervisor.TestHarness(t, func(ctx context.Context) error {
		if err := supervisor.Run(ctx, "role", rs.Run); err != nil {
			return err
		}
		if err := supervisor.Run(ctx, "cluster-manager", m.Run); err != nil {
			return err
		}
		supervisor.Signal(ctx, supervisor.SignalHealthy)
		<-ctx.Done()
		return ctx.Err()
	})
	return rs, stop
}

func connection(t *testing.T, ctx context.Context, rs *roleserve.Service) *roleserve.CuratorConnection {
	t.Helper()
	w := rs.CuratorConnection.Watch()
	defer w.Close()
	conn, err := w.Get(ctx)
	if err != nil {
		t.Fatalf("waiting for the node to be enrolled: %v", err)
	}
	return conn
}

func nodes(ctx context.Context, c *curatortest.Cluster, filter string) ([]*apb.Node, error) {
	stream, err := apb.NewManagementClient(c.OwnerConn()).GetNodes(ctx, &apb.GetNodesRequest{Filter: filter})
	if err != nil {
		return nil, err
	}
	var res []*apb.Node
	for {
		n, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return res, nil
		}
		if err != nil {
			return nil, err
		}
		res = append(res, n)
	}
}

// TestRegisterAndJoin registers a node through its parameters, approves
// it, and reboots it, after which it rejoins with its sealed
// configuration and the cluster unlock key the cluster keeps.
func TestRegisterAndJoin(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cfg := curator.DefaultClusterConfiguration()
	cfg.TpmMode = cpb.ClusterConfiguration_TPM_MODE_DISABLED
	c := curatortest.New(t, curatortest.Options{Configuration: cfg})
	ticket, err := c.RegisterTicket(ctx)
	if err != nil {
		t.Fatal(err)
	}
	directory := &cpb.ClusterDirectory{}
	for _, cur := range c.Curators {
		directory.Nodes = append(directory.Nodes, &cpb.ClusterDirectory_Node{Id: cur.Node.ID, Addresses: []*cpb.ClusterDirectory_Node_Address{{Host: cur.Host}}})
	}
	params := &apb.NodeParameters{Cluster: &apb.NodeParameters_ClusterRegister_{ClusterRegister: &apb.NodeParameters_ClusterRegister{
		RegisterTicket:   ticket,
		ClusterDirectory: directory,
		CaCertificate:    c.CA.Raw,
	}}}

	n := newTestNode(t)
	rs, stop := n.boot(t, params)

	// Approve the node once it registered, as an operator would.
	var id string
	for deadline := time.Now().Add(time.Minute); id == ""; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("node did not register within a minute")
		}
		fresh, err := nodes(ctx, c, "node.state == NODE_STATE_NEW")
		if err != nil {
			t.Fatal(err)
		}
		if len(fresh) == 1 {
			id = fresh[0].Id
			if _, err := apb.NewManagementClient(c.OwnerConn()).ApproveNode(ctx, &apb.ApproveNodeRequest{Pubkey: fresh[0].Pubkey}); err != nil {
				t.Fatalf("ApproveNode: %v", err)
			}
		}
	}
	conn := connection(t, ctx, rs)
	if conn.Credentials.ID() != id {
		t.Fatalf("enrolled as %s, but %s registered", conn.Credentials.ID(), id)
	}
	up, err := nodes(ctx, c, fmt.Sprintf("node.id == %q && node.state == NODE_STATE_UP", id))
	if err != nil || len(up) != 1 {
		t.Fatalf("node %s not UP: %v, %v", id, up, err)
	}
	sc, err := n.root.ESP.Metropolis.SealedConfiguration.Unseal(nil)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(sc.ClusterCa, c.CA.Raw) || len(sc.JoinKey) == 0 || len(sc.NodeUnlockKey) != crypt.KeySize {
		t.Errorf("sealed configuration lacks CA, join key or NUK: %v", sc)
	}
	if _, err := identity.ReadNodeCredentials(n.root.Data.Node.Credentials.FullPath()); err != nil {
		t.Errorf("node credentials not saved: %v", err)
	}

	// Reboot: no parameters are needed any more.
	stop()
	rs, _ = n.boot(t, nil)
	conn = connection(t, ctx, rs)
	if conn.Credentials.ID() != id {
		t.Errorf("rejoined as %s, want %s", conn.Credentials.ID(), id)
	}
	n.data.mu.Lock()
	mounts := n.data.mounts
	n.data.mu.Unlock()
	if mounts != 2 {
		t.Errorf("data partition mounted %d times, want 2 (new, then existing)", mounts)
	}
}

func TestNoParameters(t *testing.T) {
	n := newTestNode(t)
	m := New(Config{Storage: n.root, Data: n.data, RoleServer: roleserve.New(roleserve.Config{Storage: n.root})})
	if err := m.enrol(context.Background()); err == nil {
		t.Fatal("enrolment without sealed configuration or parameters succeeded")
	}
}
