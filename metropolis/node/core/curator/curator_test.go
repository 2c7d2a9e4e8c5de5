package curator_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"sort"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"metropolis.dev/metropolis/node"
	"metropolis.dev/metropolis/node/core/consensus"
	"metropolis.dev/metropolis/node/core/curator"
	"metropolis.dev/metropolis/node/core/curator/curatortest"
	ipb "metropolis.dev/metropolis/node/core/curator/proto/api"
	"metropolis.dev/metropolis/node/core/rpc"
	apb "metropolis.dev/metropolis/proto/api"
	cpb "metropolis.dev/metropolis/proto/common"
)

// testContext bounds a test's calls, so that a hanging curator fails the
// test instead of the test binary's timeout.
func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func management(c *curatortest.Cluster) apb.ManagementClient {
	return apb.NewManagementClient(c.OwnerConn())
}

// nodeCurator is the Curator API as node n calls it.
func nodeCurator(t *testing.T, n *curatortest.Node) ipb.CuratorClient {
	t.Helper()
	conn, err := n.Conn()
	if err != nil {
		t.Fatalf("connecting as %s: %v", n.ID, err)
	}
	return ipb.NewCuratorClient(conn)
}

// ephemeralCurator is the Curator API as the bare node key calls it.
func ephemeralCurator(t *testing.T, c *curatortest.Cluster, n *curatortest.Node, join bool) ipb.CuratorClient {
	t.Helper()
	creds := n.EphemeralCredentials()
	if join {
		creds = n.JoinCredentials()
	}
	conn, err := c.Dial(creds)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return ipb.NewCuratorClient(conn)
}

func addNode(t *testing.T, ctx context.Context, c *curatortest.Cluster, opts curatortest.NodeOptions) *curatortest.Node {
	t.Helper()
	n, err := c.AddNode(ctx, opts)
	if err != nil {
		t.Fatalf("adding node: %v", err)
	}
	return n
}

// getNodes returns the nodes GetNodes returns for filter, by ID.
func getNodes(ctx context.Context, mgmt apb.ManagementClient, filter string) (map[string]*apb.Node, error) {
	stream, err := mgmt.GetNodes(ctx, &apb.GetNodesRequest{Filter: filter})
	if err != nil {
		return nil, err
	}
	res := make(map[string]*apb.Node)
	for {
		n, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return res, nil
		}
		if err != nil {
			return nil, err
		}
		res[n.Id] = n
	}
}

func mustGetNode(t *testing.T, ctx context.Context, c *curatortest.Cluster, id string) *apb.Node {
	t.Helper()
	nodes, err := getNodes(ctx, management(c), fmt.Sprintf("node.id == %q", id))
	if err != nil {
		t.Fatalf("GetNodes: %v", err)
	}
	n := nodes[id]
	if n == nil {
		t.Fatalf("node %s not found", id)
	}
	return n
}

func wantCode(t *testing.T, what string, err error, want codes.Code) {
	t.Helper()
	if got := status.Code(err); got != want {
		t.Errorf("%s: got %v (%v), want %v", what, got, err, want)
	}
}

// eventually calls f until it succeeds or the deadline passes.
func eventually(t *testing.T, timeout time.Duration, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v: %v", what, timeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestCurator runs behaviours that can share one single-curator cluster,
// each on nodes of its own.
func TestCurator(t *testing.T) {
	t.Parallel()
	c := curatortest.New(t, curatortest.Options{
		BootstrapLabels: &cpb.NodeLabels{Pairs: []*cpb.NodeLabels_Pair{{Key: "bootstrap", Value: "true"}}},
	})
	for _, tc := range []struct {
		name string
		f    func(*testing.T, *curatortest.Cluster)
	}{
		{"Registration", testRegistration},
		{"Join", testJoin},
		{"UpdateNodeStatus", testUpdateNodeStatus},
		{"Heartbeat", testHeartbeat},
		{"GetClusterInfo", testGetClusterInfo},
		{"GetNodes", testGetNodes},
		{"UpdateNodeRoles", testUpdateNodeRoles},
		{"DeleteNode", testDeleteNode},
		{"DecommissionNode", testDecommissionNode},
		{"NodeLabels", testNodeLabels},
		{"ConfigureCluster", testConfigureCluster},
		{"IssueCertificate", testIssueCertificate},
		{"UpdateNodeClusterNetworking", testUpdateNodeClusterNetworking},
		{"GetConsensusStatus", testGetConsensusStatus},
		{"Escrow", testEscrow},
		{"Permissions", testPermissions},
		{"GetCACertificate", testGetCACertificate},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.f(t, c) })
	}
}

func testRegistration(t *testing.T, c *curatortest.Cluster) {
	ctx := testContext(t)
	mgmt := management(c)
	t1, err := mgmt.GetRegisterTicket(ctx, &apb.GetRegisterTicketRequest{})
	if err != nil {
		t.Fatalf("GetRegisterTicket: %v", err)
	}
	t2, err := mgmt.GetRegisterTicket(ctx, &apb.GetRegisterTicketRequest{})
	if err != nil {
		t.Fatalf("GetRegisterTicket: %v", err)
	}
	if len(t1.Ticket) == 0 || !bytes.Equal(t1.Ticket, t2.Ticket) {
		t.Fatalf("tickets %x and %x, want the same non-empty ticket", t1.Ticket, t2.Ticket)
	}

	n, err := c.NewNode(curatortest.NodeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cur := ephemeralCurator(t, c, n, false)
	register := &ipb.RegisterNodeRequest{
		RegisterTicket: t1.Ticket,
		JoinKey:        n.JoinKey.Public().(ed25519.PublicKey),
		HaveLocalTpm:   true,
	}

	wrong := proto.Clone(register).(*ipb.RegisterNodeRequest)
	wrong.RegisterTicket = bytes.Repeat([]byte{1}, len(t1.Ticket))
	_, err = cur.RegisterNode(ctx, wrong)
	wantCode(t, "RegisterNode with wrong ticket", err, codes.PermissionDenied)

	res, err := cur.RegisterNode(ctx, register)
	if err != nil {
		t.Fatalf("RegisterNode: %v", err)
	}
	if res.TpmUsage != cpb.NodeTPMUsage_NODE_TPM_USAGE_PRESENT_AND_USED ||
		res.RecommendedNodeStorageSecurity != cpb.NodeStorageSecurity_NODE_STORAGE_SECURITY_AUTHENTICATED_ENCRYPTED ||
		res.ClusterConfiguration.GetClusterDomain() != "cluster.internal" {
		t.Errorf("RegisterNode response %v does not follow the default configuration", res)
	}
	if got := mustGetNode(t, ctx, c, n.ID).State; got != cpb.NodeState_NODE_STATE_NEW {
		t.Errorf("registered node is %s, want NEW", got)
	}
	// Registering again while NEW gives the full answer again.
	again, err := cur.RegisterNode(ctx, register)
	if err != nil {
		t.Fatalf("RegisterNode again: %v", err)
	}
	if !proto.Equal(again, res) {
		t.Errorf("second RegisterNode returned %v, want %v", again, res)
	}

	_, err = cur.CommitNode(ctx, &ipb.CommitNodeRequest{
		ClusterUnlockKey: make([]byte, 32),
		StorageSecurity:  cpb.NodeStorageSecurity_NODE_STORAGE_SECURITY_AUTHENTICATED_ENCRYPTED,
	})
	wantCode(t, "CommitNode before approval", err, codes.PermissionDenied)

	for i := 0; i < 2; i++ {
		if _, err := mgmt.ApproveNode(ctx, &apb.ApproveNodeRequest{Pubkey: n.PublicKey()}); err != nil {
			t.Fatalf("ApproveNode #%d: %v", i+1, err)
		}
		if got := mustGetNode(t, ctx, c, n.ID).State; got != cpb.NodeState_NODE_STATE_STANDBY {
			t.Errorf("approved node is %s, want STANDBY", got)
		}
	}

	n.ClusterUnlockKey = make([]byte, 32)
	rand.Read(n.ClusterUnlockKey)
	n.StorageSecurity = res.RecommendedNodeStorageSecurity
	commit := &ipb.CommitNodeRequest{ClusterUnlockKey: n.ClusterUnlockKey, StorageSecurity: n.StorageSecurity}
	first, err := cur.CommitNode(ctx, commit)
	if err != nil {
		t.Fatalf("CommitNode: %v", err)
	}
	cert, err := x509.ParseCertificate(first.NodeCertificate)
	if err != nil {
		t.Fatalf("parsing node certificate: %v", err)
	}
	if err := cert.CheckSignatureFrom(c.CA); err != nil || cert.Subject.CommonName != n.ID {
		t.Errorf("node certificate %s not issued for the node by the cluster CA: %v", cert.Subject, err)
	}
	if !bytes.Equal(first.CaCertificate, c.CA.Raw) {
		t.Errorf("CommitNode returned another CA")
	}
	if got := mustGetNode(t, ctx, c, n.ID).State; got != cpb.NodeState_NODE_STATE_UP {
		t.Errorf("committed node is %s, want UP", got)
	}
	// A node that lost the answer gets it again.
	retry, err := cur.CommitNode(ctx, commit)
	if err != nil || !bytes.Equal(retry.NodeCertificate, first.NodeCertificate) {
		t.Errorf("repeated CommitNode: %v, same certificate: %v", err, err == nil && bytes.Equal(retry.NodeCertificate, first.NodeCertificate))
	}
	_, err = cur.CommitNode(ctx, &ipb.CommitNodeRequest{ClusterUnlockKey: make([]byte, 32), StorageSecurity: n.StorageSecurity})
	wantCode(t, "CommitNode of UP node with other key", err, codes.FailedPrecondition)
	_, err = cur.RegisterNode(ctx, register)
	wantCode(t, "RegisterNode of UP node", err, codes.FailedPrecondition)
}

func testJoin(t *testing.T, c *curatortest.Cluster) {
	ctx := testContext(t)
	n := addNode(t, ctx, c, curatortest.NodeOptions{})
	res, err := ephemeralCurator(t, c, n, true).JoinNode(ctx, &ipb.JoinNodeRequest{UsingSealedConfiguration: true})
	if err != nil {
		t.Fatalf("JoinNode: %v", err)
	}
	if !bytes.Equal(res.ClusterUnlockKey, n.ClusterUnlockKey) {
		t.Errorf("JoinNode returned unlock key %x, want %x", res.ClusterUnlockKey, n.ClusterUnlockKey)
	}
	// The cluster requires TPMs, so the configuration must be sealed.
	_, err = ephemeralCurator(t, c, n, true).JoinNode(ctx, &ipb.JoinNodeRequest{})
	wantCode(t, "JoinNode without sealed configuration", err, codes.PermissionDenied)
	// The node key is not a join key.
	_, err = ephemeralCurator(t, c, n, false).JoinNode(ctx, &ipb.JoinNodeRequest{UsingSealedConfiguration: true})
	wantCode(t, "JoinNode with node key", err, codes.NotFound)
}

func testUpdateNodeStatus(t *testing.T, c *curatortest.Cluster) {
	ctx := testContext(t)
	n, err := c.NewNode(curatortest.NodeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.Register(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Approve(ctx, n); err != nil {
		t.Fatal(err)
	}
	if err := n.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	cur := nodeCurator(t, n)
	watch, err := cur.Watch(ctx, &ipb.WatchRequest{Kind: &ipb.WatchRequest_NodeInCluster_{NodeInCluster: &ipb.WatchRequest_NodeInCluster{NodeId: n.ID}}})
	if err != nil {
		t.Fatal(err)
	}
	ev, err := watch.Recv()
	if err != nil {
		t.Fatalf("Watch: %v", err)
	}
	if len(ev.Nodes) != 1 || ev.Nodes[0].Status != nil {
		t.Fatalf("initial watch event %v, want the node without status", ev)
	}
	if err := n.UpdateStatus(ctx, "192.0.2.7"); err != nil {
		t.Fatalf("UpdateNodeStatus: %v", err)
	}
	ev, err = watch.Recv()
	if err != nil {
		t.Fatalf("Watch: %v", err)
	}
	if got := ev.Nodes[0].Status.GetExternalAddress(); got != "192.0.2.7" {
		t.Errorf("watched address %q, want 192.0.2.7", got)
	}
	if ev.Nodes[0].Status.GetTimestamp() == nil {
		t.Errorf("status has no timestamp")
	}
	other := addNode(t, ctx, c, curatortest.NodeOptions{})
	_, err = cur.UpdateNodeStatus(ctx, &ipb.UpdateNodeStatusRequest{NodeId: other.ID, Status: &cpb.NodeStatus{ExternalAddress: "192.0.2.8"}})
	wantCode(t, "UpdateNodeStatus of another node", err, codes.PermissionDenied)
}

func testHeartbeat(t *testing.T, c *curatortest.Cluster) {
	ctx := testContext(t)
	n := addNode(t, ctx, c, curatortest.NodeOptions{})
	stream, err := nodeCurator(t, n).Heartbeat(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&ipb.HeartbeatUpdateRequest{}); err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); err != nil {
		t.Fatalf("heartbeat reply: %v", err)
	}
	got := mustGetNode(t, ctx, c, n.ID)
	if got.Health != apb.Node_HEALTH_HEALTHY {
		t.Errorf("heartbeating node is %s, want HEALTHY", got.Health)
	}
	if d := got.TimeSinceHeartbeat.AsDuration(); d < 0 || d > 5*time.Second {
		t.Errorf("time since heartbeat %v, want a few milliseconds", d)
	}
	nodes, err := getNodes(ctx, management(c), "node.time_since_heartbeat < duration('6s')")
	if err != nil || nodes[n.ID] == nil {
		t.Errorf("heartbeat filter: %v, node found: %v", err, nodes[n.ID] != nil)
	}
	nodes, err = getNodes(ctx, management(c), "node.time_since_heartbeat > duration('7s') && node.id == '"+n.ID+"'")
	if err != nil || len(nodes) != 0 {
		t.Errorf("stale heartbeat filter: %v, %d nodes, want none", err, len(nodes))
	}

	// Nodes that are not UP have no health.
	newNode, err := c.NewNode(curatortest.NodeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := newNode.Register(ctx); err != nil {
		t.Fatal(err)
	}
	if got := mustGetNode(t, ctx, c, newNode.ID).Health; got != apb.Node_HEALTH_UNKNOWN {
		t.Errorf("NEW node is %s, want UNKNOWN", got)
	}
	stream.CloseSend()
}

func testGetClusterInfo(t *testing.T, c *curatortest.Cluster) {
	ctx := testContext(t)
	n := addNode(t, ctx, c, curatortest.NodeOptions{})
	res, err := management(c).GetClusterInfo(ctx, &apb.GetClusterInfoRequest{})
	if err != nil {
		t.Fatalf("GetClusterInfo: %v", err)
	}
	if !bytes.Equal(res.CaCertificate, c.CA.Raw) {
		t.Errorf("CA certificate differs")
	}
	found := false
	for _, d := range res.ClusterDirectory.Nodes {
		if d.Id == n.ID {
			found = len(d.Addresses) == 1 && d.Addresses[0].Host == n.Host
		}
	}
	if !found && len(res.ClusterDirectory.Nodes) < 15 {
		t.Errorf("directory %v lacks %s at %s", res.ClusterDirectory, n.ID, n.Host)
	}
	if len(res.ClusterDirectory.Nodes) > 15 {
		t.Errorf("directory has %d nodes, at most 15 expected", len(res.ClusterDirectory.Nodes))
	}
	if res.ClusterConfiguration.GetTpmMode() != cpb.ClusterConfiguration_TPM_MODE_REQUIRED {
		t.Errorf("configuration %v, want the default", res.ClusterConfiguration)
	}
}

func testGetNodes(t *testing.T, c *curatortest.Cluster) {
	ctx := testContext(t)
	mgmt := management(c)
	up := addNode(t, ctx, c, curatortest.NodeOptions{Labels: &cpb.NodeLabels{Pairs: []*cpb.NodeLabels_Pair{{Key: "zone", Value: "b"}, {Key: "rack", Value: "1"}}}})
	fresh, err := c.NewNode(curatortest.NodeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fresh.Register(ctx); err != nil {
		t.Fatal(err)
	}
	yes := true
	if _, err := mgmt.UpdateNodeRoles(ctx, &apb.UpdateNodeRolesRequest{Node: &apb.UpdateNodeRolesRequest_Id{Id: up.ID}, KubernetesWorker: &yes}); err != nil {
		t.Fatal(err)
	}

	all, err := getNodes(ctx, mgmt, "")
	if err != nil {
		t.Fatalf("GetNodes: %v", err)
	}
	if all[up.ID] == nil || all[fresh.ID] == nil {
		t.Fatalf("GetNodes without filter lacks nodes")
	}
	n := all[up.ID]
	if !bytes.Equal(n.Pubkey, up.PublicKey()) || n.TpmUsage != cpb.NodeTPMUsage_NODE_TPM_USAGE_PRESENT_AND_USED {
		t.Errorf("node %v has wrong key or TPM usage", n)
	}
	if keys := []string{n.Labels.Pairs[0].Key, n.Labels.Pairs[1].Key}; keys[0] != "rack" || keys[1] != "zone" {
		t.Errorf("labels %v not sorted by key", n.Labels)
	}
	for _, m := range all {
		if cm := m.Roles.GetConsensusMember(); cm != nil && (cm.CaCertificate != nil || cm.PeerCertificate != nil) {
			t.Errorf("GetNodes shows consensus credentials of %s", m.Id)
		}
	}

	for filter, want := range map[string]map[string]bool{
		"node.state == NODE_STATE_UP":                                                        {up.ID: true, fresh.ID: false},
		"node.state == NODE_STATE_NEW":                                                       {up.ID: false, fresh.ID: true},
		"has(node.roles.kubernetes_worker)":                                                  {up.ID: true, fresh.ID: false},
		"!has(node.roles.kubernetes_worker)":                                                 {up.ID: false, fresh.ID: true},
		fmt.Sprintf("node.id == %q", fresh.ID):                                               {up.ID: false, fresh.ID: true},
		fmt.Sprintf("node.status.external_address == %q", up.Host):                           {up.ID: true, fresh.ID: false},
		"node.labels.pairs.exists(p, p.key == 'zone' && p.value == 'b')":                     {up.ID: true, fresh.ID: false},
		"node.tpm_usage == NODE_TPM_USAGE_PRESENT_AND_USED && node.health != HEALTH_INVALID": {up.ID: true, fresh.ID: true},
	} {
		got, err := getNodes(ctx, mgmt, filter)
		if err != nil {
			t.Errorf("GetNodes(%q): %v", filter, err)
			continue
		}
		for id, in := range want {
			if (got[id] != nil) != in {
				t.Errorf("GetNodes(%q): node %s returned: %v, want %v", filter, id, got[id] != nil, in)
			}
		}
	}
	for _, filter := range []string{"node.state ==", "node.nope", "node.id", strings.Repeat("true && ", 1000) + "true"} {
		_, err := getNodes(ctx, mgmt, filter)
		wantCode(t, fmt.Sprintf("GetNodes(%.30q)", filter), err, codes.InvalidArgument)
	}
	// Cost limit: a filter that would take very long is cut off.
	expensive := "[" + strings.Repeat("1,", 1000) + "1].all(x, [" + strings.Repeat("1,", 1000) + "1].all(y, x == y))"
	_, err = getNodes(ctx, mgmt, expensive)
	wantCode(t, "GetNodes with expensive filter", err, codes.InvalidArgument)
}

func testUpdateNodeRoles(t *testing.T, c *curatortest.Cluster) {
	ctx := testContext(t)
	mgmt := management(c)
	n := addNode(t, ctx, c, curatortest.NodeOptions{})
	yes, no := true, false
	byID := &apb.UpdateNodeRolesRequest_Id{Id: n.ID}

	if _, err := mgmt.UpdateNodeRoles(ctx, &apb.UpdateNodeRolesRequest{Node: byID, KubernetesWorker: &yes}); err != nil {
		t.Fatalf("adding KubernetesWorker: %v", err)
	}
	if mustGetNode(t, ctx, c, n.ID).Roles.KubernetesWorker == nil {
		t.Errorf("KubernetesWorker role not set")
	}
	if _, err := mgmt.UpdateNodeRoles(ctx, &apb.UpdateNodeRolesRequest{Node: &apb.UpdateNodeRolesRequest_Pubkey{Pubkey: n.PublicKey()}, KubernetesWorker: &no}); err != nil {
		t.Fatalf("removing KubernetesWorker: %v", err)
	}
	if mustGetNode(t, ctx, c, n.ID).Roles.KubernetesWorker != nil {
		t.Errorf("KubernetesWorker role still set")
	}
	_, err := mgmt.UpdateNodeRoles(ctx, &apb.UpdateNodeRolesRequest{Node: byID, KubernetesController: &yes})
	wantCode(t, "KubernetesController without ConsensusMember", err, codes.FailedPrecondition)

	// ConsensusMember adds the node to etcd as a learner (the simulated
	// node never runs it) and puts the join parameters into its role.
	if _, err := mgmt.UpdateNodeRoles(ctx, &apb.UpdateNodeRolesRequest{Node: byID, ConsensusMember: &yes, KubernetesController: &yes}); err != nil {
		t.Fatalf("adding ConsensusMember and KubernetesController: %v", err)
	}
	roles := mustGetNode(t, ctx, c, n.ID).Roles
	if roles.ConsensusMember == nil || roles.KubernetesController == nil {
		t.Errorf("roles %v, want ConsensusMember and KubernetesController", roles)
	}
	members, err := nodeCurator(t, n).GetConsensusStatus(ctx, &ipb.GetConsensusStatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	learner := false
	for _, m := range members.EtcdMember {
		learner = learner || (m.Id == n.ID && m.Status == ipb.GetConsensusStatusResponse_EtcdMember_STATUS_LEARNER)
	}
	if !learner {
		t.Errorf("node is no etcd learner: %v", members)
	}
	_, err = mgmt.UpdateNodeRoles(ctx, &apb.UpdateNodeRolesRequest{Node: byID, ConsensusMember: &no})
	wantCode(t, "removing ConsensusMember before KubernetesController", err, codes.FailedPrecondition)
	if _, err := mgmt.UpdateNodeRoles(ctx, &apb.UpdateNodeRolesRequest{Node: byID, ConsensusMember: &no, KubernetesController: &no}); err != nil {
		t.Fatalf("removing ConsensusMember and KubernetesController: %v", err)
	}
	if roles := mustGetNode(t, ctx, c, n.ID).Roles; roles.ConsensusMember != nil || roles.KubernetesController != nil {
		t.Errorf("roles %v, want none", roles)
	}
	_, err = mgmt.UpdateNodeRoles(ctx, &apb.UpdateNodeRolesRequest{Node: &apb.UpdateNodeRolesRequest_Id{Id: "metropolis-00000000000000000000000000000000"}, KubernetesWorker: &yes})
	wantCode(t, "roles of unknown node", err, codes.NotFound)
}

func testDeleteNode(t *testing.T, c *curatortest.Cluster) {
	ctx := testContext(t)
	mgmt := management(c)
	keep := addNode(t, ctx, c, curatortest.NodeOptions{})
	up := addNode(t, ctx, c, curatortest.NodeOptions{})
	withRoles := addNode(t, ctx, c, curatortest.NodeOptions{})
	fresh, err := c.NewNode(curatortest.NodeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fresh.Register(ctx); err != nil {
		t.Fatal(err)
	}
	yes := true
	if _, err := mgmt.UpdateNodeRoles(ctx, &apb.UpdateNodeRolesRequest{Node: &apb.UpdateNodeRolesRequest_Id{Id: withRoles.ID}, KubernetesWorker: &yes}); err != nil {
		t.Fatal(err)
	}
	// A heartbeat stream opened before the deletion is ended by it.
	heartbeat, err := nodeCurator(t, up).Heartbeat(ctx)
	if err != nil {
		t.Fatal(err)
	}

	del := func(n *curatortest.Node, hasRoles, notDecommissioned bool) error {
		req := &apb.DeleteNodeRequest{Node: &apb.DeleteNodeRequest_Id{Id: n.ID}}
		if hasRoles {
			req.SafetyBypassHasRoles = &apb.DeleteNodeRequest_SafetyBypassHasRoles{}
		}
		if notDecommissioned {
			req.SafetyBypassNotDecommissioned = &apb.DeleteNodeRequest_SafetyBypassNotDecommissioned{}
		}
		_, err := mgmt.DeleteNode(ctx, req)
		return err
	}
	wantCode(t, "deleting UP node without bypass", del(up, false, false), codes.FailedPrecondition)
	wantCode(t, "deleting node with roles without bypass", del(withRoles, false, true), codes.FailedPrecondition)
	if err := del(fresh, false, false); err != nil {
		t.Errorf("deleting NEW node: %v", err)
	}
	if err := del(up, false, true); err != nil {
		t.Errorf("deleting UP node with bypass: %v", err)
	}
	if err := del(withRoles, true, true); err != nil {
		t.Errorf("deleting node with roles with bypasses: %v", err)
	}
	wantCode(t, "deleting deleted node", del(up, false, true), codes.NotFound)

	nodes, err := getNodes(ctx, mgmt, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []*curatortest.Node{up, withRoles, fresh} {
		if nodes[n.ID] != nil {
			t.Errorf("deleted node %s still listed", n.ID)
		}
	}
	if nodes[keep.ID] == nil {
		t.Errorf("node %s vanished with the others", keep.ID)
	}

	// The deleted node's certificate is revoked: even the connection it
	// already has is refused, as soon as the curator has seen the new
	// revocation list.
	eventually(t, 10*time.Second, "revoked certificate refused", func() error {
		_, err := nodeCurator(t, up).GetConsensusStatus(ctx, &ipb.GetConsensusStatusRequest{})
		if status.Code(err) != codes.Unauthenticated {
			return fmt.Errorf("call with revoked certificate: %v", err)
		}
		return nil
	})
	if err := heartbeat.Send(&ipb.HeartbeatUpdateRequest{}); err == nil {
		_, err = heartbeat.Recv()
		wantCode(t, "heartbeat of deleted node", err, codes.PermissionDenied)
	}
	// A node that was never deleted is unaffected.
	if _, err := nodeCurator(t, keep).GetConsensusStatus(ctx, &ipb.GetConsensusStatusRequest{}); err != nil {
		t.Errorf("call of remaining node: %v", err)
	}
}

func testDecommissionNode(t *testing.T, c *curatortest.Cluster) {
	ctx := testContext(t)
	mgmt := management(c)
	n := addNode(t, ctx, c, curatortest.NodeOptions{})
	ref := &apb.DecommissionNodeRequest{Node: &apb.DecommissionNodeRequest_Id{Id: n.ID}}
	yes, no := true, false
	if _, err := mgmt.UpdateNodeRoles(ctx, &apb.UpdateNodeRolesRequest{Node: &apb.UpdateNodeRolesRequest_Id{Id: n.ID}, KubernetesWorker: &yes}); err != nil {
		t.Fatal(err)
	}
	_, err := mgmt.DecommissionNode(ctx, ref)
	wantCode(t, "decommissioning node with roles", err, codes.FailedPrecondition)
	if !strings.Contains(status.Convert(err).Message(), "KubernetesWorker") {
		t.Errorf("error %q does not name the role to remove", err)
	}
	if _, err := mgmt.UpdateNodeRoles(ctx, &apb.UpdateNodeRolesRequest{Node: &apb.UpdateNodeRolesRequest_Id{Id: n.ID}, KubernetesWorker: &no}); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		if _, err := mgmt.DecommissionNode(ctx, ref); err != nil {
			t.Fatalf("DecommissionNode #%d: %v", i+1, err)
		}
	}
	if got := mustGetNode(t, ctx, c, n.ID).State; got != cpb.NodeState_NODE_STATE_DECOMMISSIONED {
		t.Errorf("node is %s, want DECOMMISSIONED", got)
	}
	_, err = mgmt.UpdateNodeRoles(ctx, &apb.UpdateNodeRolesRequest{Node: &apb.UpdateNodeRolesRequest_Id{Id: n.ID}, KubernetesWorker: &yes})
	wantCode(t, "role for decommissioned node", err, codes.FailedPrecondition)
	_, err = mgmt.ApproveNode(ctx, &apb.ApproveNodeRequest{Pubkey: n.PublicKey()})
	wantCode(t, "approving decommissioned node", err, codes.FailedPrecondition)
	// Decommissioned nodes are deleted without bypasses.
	if _, err := mgmt.DeleteNode(ctx, &apb.DeleteNodeRequest{Node: &apb.DeleteNodeRequest_Id{Id: n.ID}}); err != nil {
		t.Errorf("deleting decommissioned node: %v", err)
	}

	fresh, err := c.NewNode(curatortest.NodeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fresh.Register(ctx); err != nil {
		t.Fatal(err)
	}
	_, err = mgmt.DecommissionNode(ctx, &apb.DecommissionNodeRequest{Node: &apb.DecommissionNodeRequest_Pubkey{Pubkey: fresh.PublicKey()}})
	wantCode(t, "decommissioning NEW node", err, codes.FailedPrecondition)
}

func labelsOf(t *testing.T, ctx context.Context, c *curatortest.Cluster, id string) map[string]string {
	t.Helper()
	res := make(map[string]string)
	for _, p := range mustGetNode(t, ctx, c, id).Labels.GetPairs() {
		res[p.Key] = p.Value
	}
	return res
}

func testNodeLabels(t *testing.T, c *curatortest.Cluster) {
	ctx := testContext(t)
	mgmt := management(c)
	if got := labelsOf(t, ctx, c, c.Curators[0].Node.ID); got["bootstrap"] != "true" || len(got) != 1 {
		t.Errorf("labels of bootstrap node %v, want those given at bootstrap", got)
	}
	n := addNode(t, ctx, c, curatortest.NodeOptions{Labels: &cpb.NodeLabels{Pairs: []*cpb.NodeLabels_Pair{{Key: "registered", Value: "yes"}}}})
	if got := labelsOf(t, ctx, c, n.ID); got["registered"] != "yes" || len(got) != 1 {
		t.Fatalf("labels after registration %v", got)
	}
	update := func(upsert map[string]string, del ...string) error {
		req := &apb.UpdateNodeLabelsRequest{Node: &apb.UpdateNodeLabelsRequest_Id{Id: n.ID}, Delete: del}
		keys := make([]string, 0, len(upsert))
		for k := range upsert {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			req.Upsert = append(req.Upsert, &apb.UpdateNodeLabelsRequest_Pair{Key: k, Value: upsert[k]})
		}
		_, err := mgmt.UpdateNodeLabels(ctx, req)
		return err
	}
	if err := update(map[string]string{"example.com/rack": "a1", "zone": ""}, "registered"); err != nil {
		t.Fatalf("UpdateNodeLabels: %v", err)
	}
	want := map[string]string{"example.com/rack": "a1", "zone": ""}
	if got := labelsOf(t, ctx, c, n.ID); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("labels %v, want %v", got, want)
	}

	for name, req := range map[string]*apb.UpdateNodeLabelsRequest{
		"repeated upsert": {Upsert: []*apb.UpdateNodeLabelsRequest_Pair{{Key: "a", Value: "1"}, {Key: "a", Value: "2"}}},
		"repeated delete": {Delete: []string{"zone", "zone"}},
		"upsert and delete": {
			Upsert: []*apb.UpdateNodeLabelsRequest_Pair{{Key: "zone", Value: "x"}},
			Delete: []string{"zone"},
		},
		"invalid key":   {Upsert: []*apb.UpdateNodeLabelsRequest_Pair{{Key: "-a", Value: "1"}}},
		"invalid value": {Upsert: []*apb.UpdateNodeLabelsRequest_Pair{{Key: "a", Value: "a b"}}},
	} {
		req.Node = &apb.UpdateNodeLabelsRequest_Id{Id: n.ID}
		_, err := mgmt.UpdateNodeLabels(ctx, req)
		wantCode(t, name, err, codes.InvalidArgument)
	}
	if got := labelsOf(t, ctx, c, n.ID); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("labels changed by refused updates: %v, want %v", got, want)
	}

	many := make(map[string]string)
	for i := 0; i < 127; i++ {
		many[fmt.Sprintf("l%d", i)] = "v"
	}
	wantCode(t, "129 labels", update(many), codes.OutOfRange)
	delete(many, "l0")
	if err := update(many); err != nil {
		t.Errorf("128 labels: %v", err)
	}
}

func testConfigureCluster(t *testing.T, c *curatortest.Cluster) {
	ctx := testContext(t)
	mgmt := management(c)
	rules := func(r ...string) *cpb.ClusterConfiguration {
		k := &cpb.ClusterConfiguration_Kubernetes{}
		for _, re := range r {
			k.NodeLabelsToSynchronize = append(k.NodeLabelsToSynchronize, &cpb.ClusterConfiguration_Kubernetes_NodeLabelsToSynchronize{Regexp: re})
		}
		return &cpb.ClusterConfiguration{Kubernetes: k}
	}
	mask := &fieldmaskpb.FieldMask{Paths: []string{"kubernetes.node_labels_to_synchronize"}}
	res, err := mgmt.ConfigureCluster(ctx, &apb.ConfigureClusterRequest{NewConfig: rules("^foo$", "^bar$"), UpdateMask: mask})
	if err != nil {
		t.Fatalf("ConfigureCluster: %v", err)
	}
	if got := res.ResultingConfig.Kubernetes.GetNodeLabelsToSynchronize(); len(got) != 2 || got[1].Regexp != "^bar$" {
		t.Errorf("resulting rules %v", got)
	}
	if res.ResultingConfig.TpmMode != cpb.ClusterConfiguration_TPM_MODE_REQUIRED {
		t.Errorf("unmasked fields changed: %v", res.ResultingConfig)
	}
	info, err := mgmt.GetClusterInfo(ctx, &apb.GetClusterInfoRequest{})
	if err != nil || !proto.Equal(info.ClusterConfiguration, res.ResultingConfig) {
		t.Errorf("GetClusterInfo configuration %v (%v), want %v", info.GetClusterConfiguration(), err, res.ResultingConfig)
	}

	_, err = mgmt.ConfigureCluster(ctx, &apb.ConfigureClusterRequest{BaseConfig: rules("^old$"), NewConfig: rules(), UpdateMask: mask})
	wantCode(t, "outdated base", err, codes.FailedPrecondition)
	if _, err := mgmt.ConfigureCluster(ctx, &apb.ConfigureClusterRequest{BaseConfig: res.ResultingConfig, NewConfig: rules(), UpdateMask: mask}); err != nil {
		t.Errorf("ConfigureCluster with current base: %v", err)
	}
	_, err = mgmt.ConfigureCluster(ctx, &apb.ConfigureClusterRequest{NewConfig: &cpb.ClusterConfiguration{ClusterDomain: "other.internal"}, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"cluster_domain"}}})
	wantCode(t, "immutable field", err, codes.InvalidArgument)
	_, err = mgmt.ConfigureCluster(ctx, &apb.ConfigureClusterRequest{NewConfig: rules("("), UpdateMask: mask})
	wantCode(t, "invalid regexp", err, codes.InvalidArgument)
}

func testIssueCertificate(t *testing.T, c *curatortest.Cluster) {
	ctx := testContext(t)
	n := addNode(t, ctx, c, curatortest.NodeOptions{})
	key := func() []byte {
		pub, _, _ := ed25519.GenerateKey(rand.Reader)
		return pub
	}
	req := &ipb.IssueCertificateRequest{Kind: &ipb.IssueCertificateRequest_KubernetesWorker_{KubernetesWorker: &ipb.IssueCertificateRequest_KubernetesWorker{
		KubeletPubkey: key(), CsiProvisionerPubkey: key(), NetservicesPubkey: key(),
	}}}
	_, err := nodeCurator(t, n).IssueCertificate(ctx, req)
	wantCode(t, "IssueCertificate without KubernetesWorker role", err, codes.PermissionDenied)
	yes := true
	if _, err := management(c).UpdateNodeRoles(ctx, &apb.UpdateNodeRolesRequest{Node: &apb.UpdateNodeRolesRequest_Id{Id: n.ID}, KubernetesWorker: &yes}); err != nil {
		t.Fatal(err)
	}
	res, err := nodeCurator(t, n).IssueCertificate(ctx, req)
	if err != nil {
		t.Fatalf("IssueCertificate: %v", err)
	}
	kw := res.GetKubernetesWorker()
	ca, err := x509.ParseCertificate(kw.IdentityCaCertificate)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(ca.Raw, c.CA.Raw) {
		t.Errorf("Kubernetes certificates are issued by the cluster CA")
	}
	for _, tc := range []struct {
		der  []byte
		key  []byte
		name string
	}{
		{kw.KubeletServerCertificate, req.GetKubernetesWorker().KubeletPubkey, "system:node:" + n.ID},
		{kw.KubeletClientCertificate, req.GetKubernetesWorker().KubeletPubkey, "system:node:" + n.ID},
		{kw.CsiProvisionerCertificate, req.GetKubernetesWorker().CsiProvisionerPubkey, "metropolis:csi-provisioner:" + n.ID},
		{kw.NetservicesCertificate, req.GetKubernetesWorker().NetservicesPubkey, "metropolis:netservices:" + n.ID},
	} {
		cert, err := x509.ParseCertificate(tc.der)
		if err != nil {
			t.Errorf("parsing %s: %v", tc.name, err)
			continue
		}
		if err := cert.CheckSignatureFrom(ca); err != nil {
			t.Errorf("%s not signed by the identity CA: %v", tc.name, err)
		}
		if cert.Subject.CommonName != tc.name || !ed25519.PublicKey(tc.key).Equal(cert.PublicKey) {
			t.Errorf("certificate %s for wrong subject or key", cert.Subject)
		}
	}
	_, err = apb.NewManagementClient(c.OwnerConn()).GetNodes(ctx, &apb.GetNodesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	owner := ipb.NewCuratorClient(c.OwnerConn())
	_, err = owner.IssueCertificate(ctx, req)
	wantCode(t, "IssueCertificate by user", err, codes.PermissionDenied)
	bad := proto.Clone(req).(*ipb.IssueCertificateRequest)
	bad.GetKubernetesWorker().NetservicesPubkey = []byte{1, 2, 3}
	_, err = nodeCurator(t, n).IssueCertificate(ctx, bad)
	wantCode(t, "IssueCertificate with short key", err, codes.InvalidArgument)
}

func testUpdateNodeClusterNetworking(t *testing.T, c *curatortest.Cluster) {
	ctx := testContext(t)
	n := addNode(t, ctx, c, curatortest.NodeOptions{})
	other := addNode(t, ctx, c, curatortest.NodeOptions{})
	wgKey := func() string {
		k := make([]byte, 32)
		rand.Read(k)
		return base64.StdEncoding.EncodeToString(k)
	}
	key := wgKey()
	publish := func(n *curatortest.Node, key string, prefixes ...string) (*ipb.UpdateNodeClusterNetworkingResponse, error) {
		cn := &cpb.NodeClusterNetworking{WireguardPubkey: key}
		for _, p := range prefixes {
			cn.Prefixes = append(cn.Prefixes, &cpb.NodeClusterNetworking_Prefix{Cidr: p})
		}
		return nodeCurator(t, n).UpdateNodeClusterNetworking(ctx, &ipb.UpdateNodeClusterNetworkingRequest{Clusternet: cn})
	}
	set := func(n *curatortest.Node, key string, prefixes ...string) error {
		_, err := publish(n, key, prefixes...)
		return err
	}
	res, err := publish(n, key, "10.192.1.0/24", n.Host+"/32")
	if err != nil {
		t.Fatalf("UpdateNodeClusterNetworking: %v", err)
	}
	meshAddress := res.MeshAddress
	if addr, err := netip.ParseAddr(meshAddress); err != nil || !node.MeshAddresses.Contains(addr) {
		t.Fatalf("mesh address %q is not within %s", meshAddress, node.MeshAddresses)
	}
	stored := func(n *curatortest.Node) *cpb.NodeClusterNetworking {
		t.Helper()
		watch, err := nodeCurator(t, n).Watch(ctx, &ipb.WatchRequest{Kind: &ipb.WatchRequest_NodeInCluster_{NodeInCluster: &ipb.WatchRequest_NodeInCluster{NodeId: n.ID}}})
		if err != nil {
			t.Fatal(err)
		}
		ev, err := watch.Recv()
		if err != nil {
			t.Fatal(err)
		}
		return ev.Nodes[0].Clusternet
	}
	if got := stored(n); got.GetWireguardPubkey() != key || len(got.Prefixes) != 2 || got.MeshAddress != meshAddress {
		t.Errorf("clusternet %v not stored with mesh address %s", got, meshAddress)
	}
	// Publishing again, with other prefixes, keeps the address.
	if res, err := publish(n, key, n.Host+"/32"); err != nil || res.MeshAddress != meshAddress {
		t.Errorf("second publish: mesh address %q, error %v; want %s kept", res.GetMeshAddress(), err, meshAddress)
	}
	otherRes, err := publish(other, wgKey(), other.Host+"/32")
	if err != nil {
		t.Fatalf("UpdateNodeClusterNetworking of the other node: %v", err)
	}
	if otherRes.MeshAddress == meshAddress {
		t.Errorf("both nodes were given mesh address %s", meshAddress)
	}
	wantCode(t, "prefix of another node", set(other, wgKey(), "10.192.1.0/25"), codes.OK)
	wantCode(t, "overlapping prefix of another node", set(n, key, "10.192.1.0/24"), codes.FailedPrecondition)
	wantCode(t, "prefix within mesh addresses", set(n, key, otherRes.MeshAddress+"/32"), codes.InvalidArgument)
	wantCode(t, "mesh address set by node", func() error {
		_, err := nodeCurator(t, n).UpdateNodeClusterNetworking(ctx, &ipb.UpdateNodeClusterNetworkingRequest{
			Clusternet: &cpb.NodeClusterNetworking{WireguardPubkey: key, MeshAddress: "10.223.0.99"},
		})
		return err
	}(), codes.InvalidArgument)
	if got := stored(n); got.GetWireguardPubkey() != key || got.MeshAddress != meshAddress {
		t.Errorf("refused updates changed the stored clusternet to %v", got)
	}
	wantCode(t, "key of another node", set(other, key), codes.FailedPrecondition)
	wantCode(t, "prefix outside pod network", set(n, key, "10.0.0.0/24"), codes.InvalidArgument)
	wantCode(t, "prefix of another address", set(n, key, "192.0.2.1/32"), codes.InvalidArgument)
	wantCode(t, "non-canonical prefix", set(n, key, "10.192.1.1/24"), codes.InvalidArgument)
	wantCode(t, "too wide prefix", set(n, key, "10.0.0.0/8"), codes.InvalidArgument)
	wantCode(t, "invalid key", set(n, "not base64!"), codes.InvalidArgument)
	wantCode(t, "short key", set(n, base64.StdEncoding.EncodeToString([]byte("short"))), codes.InvalidArgument)

	// A node without status has no address to check prefixes against.
	fresh, err := c.NewNode(curatortest.NodeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fresh.Register(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Approve(ctx, fresh); err != nil {
		t.Fatal(err)
	}
	if err := fresh.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	wantCode(t, "node without status", set(fresh, wgKey()), codes.FailedPrecondition)
}

func testGetConsensusStatus(t *testing.T, c *curatortest.Cluster) {
	ctx := testContext(t)
	res, err := ipb.NewCuratorClient(c.OwnerConn()).GetConsensusStatus(ctx, &ipb.GetConsensusStatusRequest{})
	if err != nil {
		t.Fatalf("GetConsensusStatus: %v", err)
	}
	for _, m := range res.EtcdMember {
		if m.Id == c.Curators[0].Node.ID {
			if m.Status != ipb.GetConsensusStatusResponse_EtcdMember_STATUS_FULL {
				t.Errorf("bootstrap member is %s, want FULL", m.Status)
			}
			return
		}
	}
	t.Errorf("bootstrap node missing from %v", res)
}

func testEscrow(t *testing.T, c *curatortest.Cluster) {
	ctx := testContext(t)
	escrow := func(creds credentials.TransportCredentials, params *apb.EscrowFromClient_Parameters) (*apb.EscrowFromServer, error) {
		conn, err := c.Dial(creds)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		stream, err := apb.NewAAAClient(conn).Escrow(ctx)
		if err != nil {
			return nil, err
		}
		if err := stream.Send(&apb.EscrowFromClient{Parameters: params}); err != nil {
			return nil, err
		}
		var last *apb.EscrowFromServer
		for {
			res, err := stream.Recv()
			if err != nil {
				return last, err
			}
			last = res
			if len(res.EmittedCertificate) != 0 {
				return res, nil
			}
		}
	}
	ownerPub := c.OwnerKey.Public().(ed25519.PublicKey)
	ownerCreds := nodeEphemeral(c, c.OwnerKey)

	res, err := escrow(ownerCreds, &apb.EscrowFromClient_Parameters{RequestedIdentityName: "owner", PublicKey: ownerPub})
	if err != nil {
		t.Fatalf("Escrow: %v", err)
	}
	if !bytes.Equal(res.EmittedCertificate, c.Owner.Certificate[0]) {
		t.Errorf("second escrow emitted another certificate")
	}

	_, wrongKey, _ := ed25519.GenerateKey(rand.Reader)
	_, err = escrow(nodeEphemeral(c, wrongKey), &apb.EscrowFromClient_Parameters{RequestedIdentityName: "owner", PublicKey: wrongKey.Public().(ed25519.PublicKey)})
	wantCode(t, "escrow with wrong key", err, codes.PermissionDenied)
	_, err = escrow(nodeEphemeral(c, wrongKey), &apb.EscrowFromClient_Parameters{RequestedIdentityName: "owner", PublicKey: ownerPub})
	wantCode(t, "escrow of key other than TLS key", err, codes.Unimplemented)
	_, err = escrow(ownerCreds, &apb.EscrowFromClient_Parameters{RequestedIdentityName: "admin", PublicKey: ownerPub})
	wantCode(t, "escrow of other identity", err, codes.Unimplemented)
	_, err = escrow(ownerCreds, nil)
	wantCode(t, "escrow without parameters", err, codes.InvalidArgument)
	_, err = escrow(c.OwnerCredentials(), &apb.EscrowFromClient_Parameters{RequestedIdentityName: "owner", PublicKey: ownerPub})
	wantCode(t, "escrow with cluster certificate", err, codes.InvalidArgument)
	res, err = escrow(anonymous(c), &apb.EscrowFromClient_Parameters{RequestedIdentityName: "owner", PublicKey: ownerPub})
	wantCode(t, "escrow without certificate", err, codes.Unauthenticated)
	if len(res.GetNeeded()) != 1 || res.Needed[0] != apb.EscrowFromServer_PROOF_KIND_REFRESH_CERTIFICATE {
		t.Errorf("escrow without certificate did not ask for a proof: %v", res)
	}
}

func testPermissions(t *testing.T, c *curatortest.Cluster) {
	ctx := testContext(t)
	n := addNode(t, ctx, c, curatortest.NodeOptions{})
	nobody, err := c.UserCredentials(ctx, "nobody")
	if err != nil {
		t.Fatal(err)
	}
	conn, err := c.Dial(nobody)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	mgmt := apb.NewManagementClient(conn)
	_, err = mgmt.GetRegisterTicket(ctx, &apb.GetRegisterTicketRequest{})
	wantCode(t, "GetRegisterTicket without permission", err, codes.PermissionDenied)
	_, err = getNodes(ctx, mgmt, "")
	wantCode(t, "GetNodes without permission", err, codes.PermissionDenied)
	_, err = mgmt.ApproveNode(ctx, &apb.ApproveNodeRequest{Pubkey: n.PublicKey()})
	wantCode(t, "ApproveNode without permission", err, codes.PermissionDenied)
	_, err = mgmt.DeleteNode(ctx, &apb.DeleteNodeRequest{Node: &apb.DeleteNodeRequest_Id{Id: n.ID}})
	wantCode(t, "DeleteNode without permission", err, codes.PermissionDenied)
	// Nodes may read the cluster, not manage it.
	nodeConn, err := n.Conn()
	if err != nil {
		t.Fatal(err)
	}
	_, err = apb.NewManagementClient(nodeConn).DeleteNode(ctx, &apb.DeleteNodeRequest{Node: &apb.DeleteNodeRequest_Id{Id: n.ID}})
	wantCode(t, "DeleteNode by node", err, codes.PermissionDenied)
	if _, err := getNodes(ctx, apb.NewManagementClient(nodeConn), ""); err != nil {
		t.Errorf("GetNodes by node: %v", err)
	}
	// Node-only methods refuse users, even the owner.
	_, err = ipb.NewCuratorClient(c.OwnerConn()).UpdateNodeStatus(ctx, &ipb.UpdateNodeStatusRequest{NodeId: n.ID, Status: &cpb.NodeStatus{ExternalAddress: "192.0.2.1"}})
	wantCode(t, "UpdateNodeStatus by owner", err, codes.PermissionDenied)
	if got := mustGetNode(t, ctx, c, n.ID).Status.GetExternalAddress(); got != n.Host {
		t.Errorf("status changed to %q by refused call", got)
	}
}

func testGetCACertificate(t *testing.T, c *curatortest.Cluster) {
	ctx := testContext(t)
	for i, cur := range c.Curators {
		conn, err := curatortest.DialDirect(cur.Host, insecure())
		if err != nil {
			t.Fatal(err)
		}
		res, err := ipb.NewCuratorLocalClient(conn).GetCACertificate(ctx, &ipb.GetCACertificateRequest{})
		conn.Close()
		if err != nil {
			t.Fatalf("GetCACertificate of curator %d: %v", i, err)
		}
		if !bytes.Equal(res.IdentityCaCertificate, c.CA.Raw) {
			t.Errorf("curator %d returned another CA", i)
		}
	}
}

// TestTPMModes checks registration and rejoining against each TPM mode.
func TestTPMModes(t *testing.T) {
	t.Parallel()
	for _, mode := range []cpb.ClusterConfiguration_TPMMode{
		cpb.ClusterConfiguration_TPM_MODE_REQUIRED,
		cpb.ClusterConfiguration_TPM_MODE_BEST_EFFORT,
		cpb.ClusterConfiguration_TPM_MODE_DISABLED,
	} {
		t.Run(mode.String(), func(t *testing.T) {
			t.Parallel()
			c := curatortest.New(t, curatortest.Options{Configuration: &cpb.ClusterConfiguration{
				TpmMode:               mode,
				StorageSecurityPolicy: cpb.ClusterConfiguration_STORAGE_SECURITY_POLICY_NEEDS_INSECURE,
			}})
			ctx := testContext(t)
			for _, haveTPM := range []bool{true, false} {
				n, err := c.AddNode(ctx, curatortest.NodeOptions{NoTPM: !haveTPM})
				if mode == cpb.ClusterConfiguration_TPM_MODE_REQUIRED && !haveTPM {
					wantCode(t, "registering without TPM", err, codes.PermissionDenied)
					continue
				}
				if err != nil {
					t.Errorf("TPM %v: adding node: %v", haveTPM, err)
					continue
				}
				usesTPM := mustGetNode(t, ctx, c, n.ID).TpmUsage == cpb.NodeTPMUsage_NODE_TPM_USAGE_PRESENT_AND_USED
				if wantUse := haveTPM && mode != cpb.ClusterConfiguration_TPM_MODE_DISABLED; usesTPM != wantUse {
					t.Errorf("TPM %v: node uses TPM: %v, want %v", haveTPM, usesTPM, wantUse)
				}
				for _, sealed := range []bool{true, false} {
					_, err := ephemeralCurator(t, c, n, true).JoinNode(ctx, &ipb.JoinNodeRequest{UsingSealedConfiguration: sealed})
					if sealed == usesTPM {
						if err != nil {
							t.Errorf("TPM %v: JoinNode(sealed=%v): %v", haveTPM, sealed, err)
						}
					} else {
						wantCode(t, fmt.Sprintf("TPM %v: JoinNode(sealed=%v)", haveTPM, sealed), err, codes.PermissionDenied)
					}
				}
			}
		})
	}
}

// TestBootstrapNodeFinish checks that bootstrapping validates its input,
// can be repeated after a crash, and happens only once.
func TestBootstrapNodeFinish(t *testing.T) {
	t.Parallel()
	c := curatortest.New(t, curatortest.Options{})
	ctx := testContext(t)
	etcd, err := c.Etcd(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	w := c.Curators[0].Consensus.Value().Watch()
	defer w.Close()
	st, err := w.Get(ctx, consensus.FilterRunning)
	if err != nil {
		t.Fatal(err)
	}
	n := c.Curators[0].Node
	join, err := st.AddNode(ctx, n.ID, n.PublicKey(), c.Curators[0].Host)
	if err != nil {
		t.Fatal(err)
	}
	b := &curator.Bootstrap{
		NodePublicKey:    n.PublicKey(),
		JoinKey:          n.JoinKey.Public().(ed25519.PublicKey),
		ClusterUnlockKey: n.ClusterUnlockKey,
		StorageSecurity:  n.StorageSecurity,
		TPMUsage:         cpb.NodeTPMUsage_NODE_TPM_USAGE_PRESENT_AND_USED,
		Consensus:        join,
		OwnerPublicKey:   c.OwnerKey.Public().(ed25519.PublicKey),
	}
	before, err := c.State(ctx)
	if err != nil {
		t.Fatal(err)
	}
	creds, err := curator.BootstrapNodeFinish(ctx, etcd, b)
	if err != nil {
		t.Fatalf("repeating bootstrap: %v", err)
	}
	if !bytes.Equal(creds.NodeCertificate, n.NodeCredentials().Certificate().Raw) || !bytes.Equal(creds.CACertificate, c.CA.Raw) {
		t.Errorf("repeated bootstrap returned other credentials")
	}

	other := *b
	other.NodePublicKey, _, _ = ed25519.GenerateKey(rand.Reader)
	if _, err := curator.BootstrapNodeFinish(ctx, etcd, &other); err == nil {
		t.Errorf("bootstrapping another node into the cluster succeeded")
	}
	for name, mutate := range map[string]func(*curator.Bootstrap){
		"no node key":      func(b *curator.Bootstrap) { b.NodePublicKey = nil },
		"short join key":   func(b *curator.Bootstrap) { b.JoinKey = b.JoinKey[:5] },
		"no owner":         func(b *curator.Bootstrap) { b.OwnerPublicKey = nil },
		"no unlock key":    func(b *curator.Bootstrap) { b.ClusterUnlockKey = nil },
		"insecure storage": func(b *curator.Bootstrap) { b.StorageSecurity = cpb.NodeStorageSecurity_NODE_STORAGE_SECURITY_INSECURE },
		"TPM not used":     func(b *curator.Bootstrap) { b.TPMUsage = cpb.NodeTPMUsage_NODE_TPM_USAGE_PRESENT_BUT_UNUSED },
		"no consensus":     func(b *curator.Bootstrap) { b.Consensus = nil },
		"bad domain":       func(b *curator.Bootstrap) { b.Configuration = &cpb.ClusterConfiguration{ClusterDomain: "A_B"} },
		"bad labels":       func(b *curator.Bootstrap) { b.Labels = &cpb.NodeLabels{Pairs: []*cpb.NodeLabels_Pair{{Key: "-"}}} },
		"duplicate labels": func(b *curator.Bootstrap) {
			b.Labels = &cpb.NodeLabels{Pairs: []*cpb.NodeLabels_Pair{{Key: "a"}, {Key: "a"}}}
		},
	} {
		bad := *b
		mutate(&bad)
		if _, err := curator.BootstrapNodeFinish(ctx, etcd, &bad); err == nil {
			t.Errorf("%s: bootstrap succeeded", name)
		}
	}
	after, err := c.State(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !equalState(before, after) {
		t.Errorf("refused or repeated bootstraps changed the cluster state")
	}
}

// equalState compares two results of Cluster.State.
func equalState(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// nodeEphemeral are credentials of the bare key.
func nodeEphemeral(c *curatortest.Cluster, key ed25519.PrivateKey) credentials.TransportCredentials {
	creds, err := rpc.NewEphemeralCredentials(key, rpc.WantRemoteCluster(c.CA))
	if err != nil {
		panic(err)
	}
	return creds
}

// anonymous are credentials without any client certificate.
func anonymous(c *curatortest.Cluster) credentials.TransportCredentials {
	config, err := rpc.ClientTLSConfig(nil, rpc.WantRemoteCluster(c.CA))
	if err != nil {
		panic(err)
	}
	return credentials.NewTLS(config)
}

// insecure are credentials that neither present nor verify anything.
func insecure() credentials.TransportCredentials {
	config, err := rpc.ClientTLSConfig(nil, rpc.WantInsecure())
	if err != nil {
		panic(err)
	}
	return credentials.NewTLS(config)
}
