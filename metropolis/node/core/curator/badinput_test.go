package curator_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"metropolis.dev/metropolis/node/core/curator/curatortest"
	ipb "metropolis.dev/metropolis/node/core/curator/proto/api"
	apb "metropolis.dev/metropolis/proto/api"
	cpb "metropolis.dev/metropolis/proto/common"
)

// callers are the identities bad input is sent as.
type callers struct {
	owner, node, nobody, anonymous *grpc.ClientConn
	// newKey is an unregistered bare key, newNode the bare key of a NEW
	// node, upNode that of an UP node.
	newKey, newNode, upNode *grpc.ClientConn
}

func dial(t *testing.T, c *curatortest.Cluster, creds credentials.TransportCredentials) *grpc.ClientConn {
	t.Helper()
	conn, err := c.Dial(creds)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// firstRecv opens a server stream with open and returns the error of its
// first message, which is where stream handlers' errors arrive.
func firstRecv[T any](stream interface{ Recv() (T, error) }, err error) error {
	if err != nil {
		return err
	}
	_, err = stream.Recv()
	return err
}

// TestBadInput sends every RPC missing, oversized and malformed fields and
// calls it with wrong identities. Each call must fail with the right code
// and leave the cluster's state as it was.
func TestBadInput(t *testing.T) {
	t.Parallel()
	c := curatortest.New(t, curatortest.Options{})
	ctx := testContext(t)

	node := addNode(t, ctx, c, curatortest.NodeOptions{})
	other := addNode(t, ctx, c, curatortest.NodeOptions{})
	fresh, err := c.NewNode(curatortest.NodeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fresh.Register(ctx); err != nil {
		t.Fatal(err)
	}
	unregistered, err := c.NewNode(curatortest.NodeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	nobody, err := c.UserCredentials(ctx, "nobody")
	if err != nil {
		t.Fatal(err)
	}
	nodeConn, err := node.Conn()
	if err != nil {
		t.Fatal(err)
	}
	cl := callers{
		owner:     c.OwnerConn(),
		node:      nodeConn,
		nobody:    dial(t, c, nobody),
		anonymous: dial(t, c, anonymous(c)),
		newKey:    dial(t, c, unregistered.EphemeralCredentials()),
		newNode:   dial(t, c, fresh.EphemeralCredentials()),
		upNode:    dial(t, c, node.EphemeralCredentials()),
	}
	ticket, err := c.RegisterTicket(ctx)
	if err != nil {
		t.Fatal(err)
	}
	key := func() []byte {
		pub, _, _ := ed25519.GenerateKey(rand.Reader)
		return pub
	}
	wgKey := func() string { return base64.StdEncoding.EncodeToString(key()) }
	// Give node a cluster network key, so that another node may not take
	// it.
	takenWGKey := wgKey()
	if _, err := ipb.NewCuratorClient(nodeConn).UpdateNodeClusterNetworking(ctx, &ipb.UpdateNodeClusterNetworkingRequest{
		Clusternet: &cpb.NodeClusterNetworking{WireguardPubkey: takenWGKey},
	}); err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("a", 300)
	labels := func(n int) *cpb.NodeLabels {
		l := &cpb.NodeLabels{}
		for i := 0; i < n; i++ {
			l.Pairs = append(l.Pairs, &cpb.NodeLabels_Pair{Key: fmt.Sprintf("k%d", i)})
		}
		return l
	}
	mgmt := func(conn *grpc.ClientConn) apb.ManagementClient { return apb.NewManagementClient(conn) }
	cur := func(conn *grpc.ClientConn) ipb.CuratorClient { return ipb.NewCuratorClient(conn) }
	nodeID := func(id string) *apb.UpdateNodeRolesRequest_Id { return &apb.UpdateNodeRolesRequest_Id{Id: id} }
	yes := true
	unknownID := "metropolis-0123456789abcdef0123456789abcdef"
	mask := &fieldmaskpb.FieldMask{Paths: []string{"kubernetes.node_labels_to_synchronize"}}
	rules := func(r ...string) *cpb.ClusterConfiguration {
		k := &cpb.ClusterConfiguration_Kubernetes{}
		for _, re := range r {
			k.NodeLabelsToSynchronize = append(k.NodeLabelsToSynchronize, &cpb.ClusterConfiguration_Kubernetes_NodeLabelsToSynchronize{Regexp: re})
		}
		return &cpb.ClusterConfiguration{Kubernetes: k}
	}
	register := func(conn *grpc.ClientConn, req *ipb.RegisterNodeRequest) error {
		_, err := cur(conn).RegisterNode(ctx, req)
		return err
	}
	status := func(conn *grpc.ClientConn, id string, st *cpb.NodeStatus) error {
		_, err := cur(conn).UpdateNodeStatus(ctx, &ipb.UpdateNodeStatusRequest{NodeId: id, Status: st})
		return err
	}
	clusternet := func(conn *grpc.ClientConn, cn *cpb.NodeClusterNetworking) error {
		_, err := cur(conn).UpdateNodeClusterNetworking(ctx, &ipb.UpdateNodeClusterNetworkingRequest{Clusternet: cn})
		return err
	}
	prefixes := func(cidrs ...string) []*cpb.NodeClusterNetworking_Prefix {
		var res []*cpb.NodeClusterNetworking_Prefix
		for _, c := range cidrs {
			res = append(res, &cpb.NodeClusterNetworking_Prefix{Cidr: c})
		}
		return res
	}
	worker := func(kubelet, csi, netservices []byte) *ipb.IssueCertificateRequest {
		return &ipb.IssueCertificateRequest{Kind: &ipb.IssueCertificateRequest_KubernetesWorker_{KubernetesWorker: &ipb.IssueCertificateRequest_KubernetesWorker{
			KubeletPubkey: kubelet, CsiProvisionerPubkey: csi, NetservicesPubkey: netservices,
		}}}
	}
	manyPrefixes := make([]string, 300)
	for i := range manyPrefixes {
		manyPrefixes[i] = fmt.Sprintf("10.192.%d.%d/32", i/256, i%256)
	}

	for _, tc := range []struct {
		name string
		call func() error
		want codes.Code
	}{
		// Management.
		{"GetRegisterTicket/nobody", func() error {
			_, err := mgmt(cl.nobody).GetRegisterTicket(ctx, &apb.GetRegisterTicketRequest{})
			return err
		}, codes.PermissionDenied},
		{"GetRegisterTicket/anonymous", func() error {
			_, err := mgmt(cl.anonymous).GetRegisterTicket(ctx, &apb.GetRegisterTicketRequest{})
			return err
		}, codes.Unauthenticated},
		{"GetRegisterTicket/node", func() error {
			_, err := mgmt(cl.node).GetRegisterTicket(ctx, &apb.GetRegisterTicketRequest{})
			return err
		}, codes.PermissionDenied},
		{"GetClusterInfo/nobody", func() error {
			_, err := mgmt(cl.nobody).GetClusterInfo(ctx, &apb.GetClusterInfoRequest{})
			return err
		}, codes.PermissionDenied},
		{"GetNodes/too long filter", func() error {
			return firstRecv(mgmt(cl.owner).GetNodes(ctx, &apb.GetNodesRequest{Filter: "true || " + strings.Repeat("x", 5000)}))
		}, codes.InvalidArgument},
		{"GetNodes/syntax error", func() error {
			return firstRecv(mgmt(cl.owner).GetNodes(ctx, &apb.GetNodesRequest{Filter: "node.id =="}))
		}, codes.InvalidArgument},
		{"GetNodes/not bool", func() error {
			return firstRecv(mgmt(cl.owner).GetNodes(ctx, &apb.GetNodesRequest{Filter: "node.id"}))
		}, codes.InvalidArgument},
		{"GetNodes/runtime error", func() error {
			return firstRecv(mgmt(cl.owner).GetNodes(ctx, &apb.GetNodesRequest{Filter: "1 / (size(node.id) - size(node.id)) == 1"}))
		}, codes.InvalidArgument},
		{"GetNodes/nobody", func() error {
			return firstRecv(mgmt(cl.nobody).GetNodes(ctx, &apb.GetNodesRequest{}))
		}, codes.PermissionDenied},
		{"GetNodes/unregistered key", func() error {
			return firstRecv(mgmt(cl.newKey).GetNodes(ctx, &apb.GetNodesRequest{}))
		}, codes.Unauthenticated},
		{"ApproveNode/no key", func() error {
			_, err := mgmt(cl.owner).ApproveNode(ctx, &apb.ApproveNodeRequest{})
			return err
		}, codes.InvalidArgument},
		{"ApproveNode/short key", func() error {
			_, err := mgmt(cl.owner).ApproveNode(ctx, &apb.ApproveNodeRequest{Pubkey: make([]byte, 31)})
			return err
		}, codes.InvalidArgument},
		{"ApproveNode/oversized key", func() error {
			_, err := mgmt(cl.owner).ApproveNode(ctx, &apb.ApproveNodeRequest{Pubkey: make([]byte, 4096)})
			return err
		}, codes.InvalidArgument},
		{"ApproveNode/unknown", func() error {
			_, err := mgmt(cl.owner).ApproveNode(ctx, &apb.ApproveNodeRequest{Pubkey: key()})
			return err
		}, codes.NotFound},
		{"ApproveNode/nobody", func() error {
			_, err := mgmt(cl.nobody).ApproveNode(ctx, &apb.ApproveNodeRequest{Pubkey: fresh.PublicKey()})
			return err
		}, codes.PermissionDenied},
		{"ApproveNode/node", func() error {
			_, err := mgmt(cl.node).ApproveNode(ctx, &apb.ApproveNodeRequest{Pubkey: fresh.PublicKey()})
			return err
		}, codes.PermissionDenied},
		{"UpdateNodeRoles/no node", func() error {
			_, err := mgmt(cl.owner).UpdateNodeRoles(ctx, &apb.UpdateNodeRolesRequest{KubernetesWorker: &yes})
			return err
		}, codes.InvalidArgument},
		{"UpdateNodeRoles/malformed ID", func() error {
			_, err := mgmt(cl.owner).UpdateNodeRoles(ctx, &apb.UpdateNodeRolesRequest{Node: nodeID("metropolis-xyz"), KubernetesWorker: &yes})
			return err
		}, codes.InvalidArgument},
		{"UpdateNodeRoles/oversized ID", func() error {
			_, err := mgmt(cl.owner).UpdateNodeRoles(ctx, &apb.UpdateNodeRolesRequest{Node: nodeID(strings.Repeat("x", 100000)), KubernetesWorker: &yes})
			return err
		}, codes.InvalidArgument},
		{"UpdateNodeRoles/short key", func() error {
			_, err := mgmt(cl.owner).UpdateNodeRoles(ctx, &apb.UpdateNodeRolesRequest{Node: &apb.UpdateNodeRolesRequest_Pubkey{Pubkey: []byte{1}}, KubernetesWorker: &yes})
			return err
		}, codes.InvalidArgument},
		{"UpdateNodeRoles/unknown", func() error {
			_, err := mgmt(cl.owner).UpdateNodeRoles(ctx, &apb.UpdateNodeRolesRequest{Node: nodeID(unknownID), KubernetesWorker: &yes})
			return err
		}, codes.NotFound},
		{"UpdateNodeRoles/key of other node with same ID prefix", func() error {
			pub := append([]byte{}, node.PublicKey()...)
			pub[31] ^= 1
			_, err := mgmt(cl.owner).UpdateNodeRoles(ctx, &apb.UpdateNodeRolesRequest{Node: &apb.UpdateNodeRolesRequest_Pubkey{Pubkey: pub}, KubernetesWorker: &yes})
			return err
		}, codes.NotFound},
		{"UpdateNodeRoles/controller without consensus", func() error {
			_, err := mgmt(cl.owner).UpdateNodeRoles(ctx, &apb.UpdateNodeRolesRequest{Node: nodeID(node.ID), KubernetesController: &yes})
			return err
		}, codes.FailedPrecondition},
		{"UpdateNodeRoles/NEW node", func() error {
			_, err := mgmt(cl.owner).UpdateNodeRoles(ctx, &apb.UpdateNodeRolesRequest{Node: nodeID(fresh.ID), KubernetesWorker: &yes})
			return err
		}, codes.FailedPrecondition},
		{"UpdateNodeRoles/nobody", func() error {
			_, err := mgmt(cl.nobody).UpdateNodeRoles(ctx, &apb.UpdateNodeRolesRequest{Node: nodeID(node.ID), KubernetesWorker: &yes})
			return err
		}, codes.PermissionDenied},
		{"UpdateNodeLabels/no node", func() error {
			_, err := mgmt(cl.owner).UpdateNodeLabels(ctx, &apb.UpdateNodeLabelsRequest{Delete: []string{"a"}})
			return err
		}, codes.InvalidArgument},
		{"UpdateNodeLabels/oversized value", func() error {
			_, err := mgmt(cl.owner).UpdateNodeLabels(ctx, &apb.UpdateNodeLabelsRequest{Node: &apb.UpdateNodeLabelsRequest_Id{Id: node.ID}, Upsert: []*apb.UpdateNodeLabelsRequest_Pair{{Key: "a", Value: long}}})
			return err
		}, codes.InvalidArgument},
		{"UpdateNodeLabels/oversized key", func() error {
			_, err := mgmt(cl.owner).UpdateNodeLabels(ctx, &apb.UpdateNodeLabelsRequest{Node: &apb.UpdateNodeLabelsRequest_Id{Id: node.ID}, Upsert: []*apb.UpdateNodeLabelsRequest_Pair{{Key: long}}})
			return err
		}, codes.InvalidArgument},
		{"UpdateNodeLabels/malformed delete", func() error {
			_, err := mgmt(cl.owner).UpdateNodeLabels(ctx, &apb.UpdateNodeLabelsRequest{Node: &apb.UpdateNodeLabelsRequest_Id{Id: node.ID}, Delete: []string{"a b"}})
			return err
		}, codes.InvalidArgument},
		{"UpdateNodeLabels/too many upserts", func() error {
			req := &apb.UpdateNodeLabelsRequest{Node: &apb.UpdateNodeLabelsRequest_Id{Id: node.ID}}
			for _, p := range labels(200).Pairs {
				req.Upsert = append(req.Upsert, &apb.UpdateNodeLabelsRequest_Pair{Key: p.Key})
			}
			_, err := mgmt(cl.owner).UpdateNodeLabels(ctx, req)
			return err
		}, codes.InvalidArgument},
		{"UpdateNodeLabels/unknown", func() error {
			_, err := mgmt(cl.owner).UpdateNodeLabels(ctx, &apb.UpdateNodeLabelsRequest{Node: &apb.UpdateNodeLabelsRequest_Id{Id: unknownID}, Delete: []string{"a"}})
			return err
		}, codes.NotFound},
		{"UpdateNodeLabels/nobody", func() error {
			_, err := mgmt(cl.nobody).UpdateNodeLabels(ctx, &apb.UpdateNodeLabelsRequest{Node: &apb.UpdateNodeLabelsRequest_Id{Id: node.ID}, Delete: []string{"a"}})
			return err
		}, codes.PermissionDenied},
		{"DecommissionNode/no node", func() error {
			_, err := mgmt(cl.owner).DecommissionNode(ctx, &apb.DecommissionNodeRequest{})
			return err
		}, codes.InvalidArgument},
		{"DecommissionNode/unknown", func() error {
			_, err := mgmt(cl.owner).DecommissionNode(ctx, &apb.DecommissionNodeRequest{Node: &apb.DecommissionNodeRequest_Pubkey{Pubkey: key()}})
			return err
		}, codes.NotFound},
		{"DecommissionNode/NEW node", func() error {
			_, err := mgmt(cl.owner).DecommissionNode(ctx, &apb.DecommissionNodeRequest{Node: &apb.DecommissionNodeRequest_Id{Id: fresh.ID}})
			return err
		}, codes.FailedPrecondition},
		{"DecommissionNode/node with roles", func() error {
			_, err := mgmt(cl.owner).DecommissionNode(ctx, &apb.DecommissionNodeRequest{Node: &apb.DecommissionNodeRequest_Id{Id: c.Curators[0].Node.ID}})
			return err
		}, codes.FailedPrecondition},
		{"DecommissionNode/nobody", func() error {
			_, err := mgmt(cl.nobody).DecommissionNode(ctx, &apb.DecommissionNodeRequest{Node: &apb.DecommissionNodeRequest_Id{Id: node.ID}})
			return err
		}, codes.PermissionDenied},
		{"DeleteNode/no node", func() error {
			_, err := mgmt(cl.owner).DeleteNode(ctx, &apb.DeleteNodeRequest{})
			return err
		}, codes.InvalidArgument},
		{"DeleteNode/malformed ID", func() error {
			_, err := mgmt(cl.owner).DeleteNode(ctx, &apb.DeleteNodeRequest{Node: &apb.DeleteNodeRequest_Id{Id: strings.ToUpper(node.ID)}})
			return err
		}, codes.InvalidArgument},
		{"DeleteNode/unknown", func() error {
			_, err := mgmt(cl.owner).DeleteNode(ctx, &apb.DeleteNodeRequest{Node: &apb.DeleteNodeRequest_Id{Id: unknownID}})
			return err
		}, codes.NotFound},
		{"DeleteNode/UP node", func() error {
			_, err := mgmt(cl.owner).DeleteNode(ctx, &apb.DeleteNodeRequest{Node: &apb.DeleteNodeRequest_Id{Id: node.ID}})
			return err
		}, codes.FailedPrecondition},
		{"DeleteNode/node with roles", func() error {
			_, err := mgmt(cl.owner).DeleteNode(ctx, &apb.DeleteNodeRequest{
				Node:                          &apb.DeleteNodeRequest_Id{Id: c.Curators[0].Node.ID},
				SafetyBypassNotDecommissioned: &apb.DeleteNodeRequest_SafetyBypassNotDecommissioned{},
			})
			return err
		}, codes.FailedPrecondition},
		{"DeleteNode/nobody", func() error {
			_, err := mgmt(cl.nobody).DeleteNode(ctx, &apb.DeleteNodeRequest{Node: &apb.DeleteNodeRequest_Id{Id: fresh.ID}})
			return err
		}, codes.PermissionDenied},
		{"DeleteNode/node", func() error {
			_, err := mgmt(cl.node).DeleteNode(ctx, &apb.DeleteNodeRequest{Node: &apb.DeleteNodeRequest_Id{Id: fresh.ID}})
			return err
		}, codes.PermissionDenied},
		{"ConfigureCluster/no config", func() error {
			_, err := mgmt(cl.owner).ConfigureCluster(ctx, &apb.ConfigureClusterRequest{UpdateMask: mask})
			return err
		}, codes.InvalidArgument},
		{"ConfigureCluster/no mask", func() error {
			_, err := mgmt(cl.owner).ConfigureCluster(ctx, &apb.ConfigureClusterRequest{NewConfig: rules("a")})
			return err
		}, codes.InvalidArgument},
		{"ConfigureCluster/immutable", func() error {
			_, err := mgmt(cl.owner).ConfigureCluster(ctx, &apb.ConfigureClusterRequest{NewConfig: &cpb.ClusterConfiguration{TpmMode: cpb.ClusterConfiguration_TPM_MODE_DISABLED}, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"tpm_mode"}}})
			return err
		}, codes.InvalidArgument},
		{"ConfigureCluster/unknown path", func() error {
			_, err := mgmt(cl.owner).ConfigureCluster(ctx, &apb.ConfigureClusterRequest{NewConfig: rules(), UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"kubernetes.nope"}}})
			return err
		}, codes.InvalidArgument},
		{"ConfigureCluster/too many paths", func() error {
			paths := make([]string, 100)
			for i := range paths {
				paths[i] = "kubernetes.node_labels_to_synchronize"
			}
			_, err := mgmt(cl.owner).ConfigureCluster(ctx, &apb.ConfigureClusterRequest{NewConfig: rules(), UpdateMask: &fieldmaskpb.FieldMask{Paths: paths}})
			return err
		}, codes.InvalidArgument},
		{"ConfigureCluster/bad regexp", func() error {
			_, err := mgmt(cl.owner).ConfigureCluster(ctx, &apb.ConfigureClusterRequest{NewConfig: rules("a("), UpdateMask: mask})
			return err
		}, codes.InvalidArgument},
		{"ConfigureCluster/oversized regexp", func() error {
			_, err := mgmt(cl.owner).ConfigureCluster(ctx, &apb.ConfigureClusterRequest{NewConfig: rules(strings.Repeat("a", 5000)), UpdateMask: mask})
			return err
		}, codes.InvalidArgument},
		{"ConfigureCluster/too many rules", func() error {
			_, err := mgmt(cl.owner).ConfigureCluster(ctx, &apb.ConfigureClusterRequest{NewConfig: rules(strings.Split(strings.Repeat("a,", 200), ",")[:200]...), UpdateMask: mask})
			return err
		}, codes.InvalidArgument},
		{"ConfigureCluster/outdated base", func() error {
			_, err := mgmt(cl.owner).ConfigureCluster(ctx, &apb.ConfigureClusterRequest{BaseConfig: rules("x"), NewConfig: rules("a"), UpdateMask: mask})
			return err
		}, codes.FailedPrecondition},
		{"ConfigureCluster/nobody", func() error {
			_, err := mgmt(cl.nobody).ConfigureCluster(ctx, &apb.ConfigureClusterRequest{NewConfig: rules("a"), UpdateMask: mask})
			return err
		}, codes.PermissionDenied},

		// Curator.
		{"Watch/no kind", func() error {
			return firstRecv(cur(cl.node).Watch(ctx, &ipb.WatchRequest{}))
		}, codes.InvalidArgument},
		{"Watch/malformed ID", func() error {
			return firstRecv(cur(cl.node).Watch(ctx, &ipb.WatchRequest{Kind: &ipb.WatchRequest_NodeInCluster_{NodeInCluster: &ipb.WatchRequest_NodeInCluster{NodeId: long}}}))
		}, codes.InvalidArgument},
		{"Watch/nobody", func() error {
			return firstRecv(cur(cl.nobody).Watch(ctx, &ipb.WatchRequest{Kind: &ipb.WatchRequest_NodesInCluster_{NodesInCluster: &ipb.WatchRequest_NodesInCluster{}}}))
		}, codes.PermissionDenied},
		{"Watch/anonymous", func() error {
			return firstRecv(cur(cl.anonymous).Watch(ctx, &ipb.WatchRequest{Kind: &ipb.WatchRequest_NodesInCluster_{NodesInCluster: &ipb.WatchRequest_NodesInCluster{}}}))
		}, codes.Unauthenticated},
		{"UpdateNodeStatus/no status", func() error { return status(cl.node, node.ID, nil) }, codes.InvalidArgument},
		{"UpdateNodeStatus/no address", func() error { return status(cl.node, node.ID, &cpb.NodeStatus{}) }, codes.InvalidArgument},
		{"UpdateNodeStatus/malformed address", func() error {
			return status(cl.node, node.ID, &cpb.NodeStatus{ExternalAddress: "node.example.com"})
		}, codes.InvalidArgument},
		{"UpdateNodeStatus/oversized address", func() error {
			return status(cl.node, node.ID, &cpb.NodeStatus{ExternalAddress: long})
		}, codes.InvalidArgument},
		{"UpdateNodeStatus/unspecified address", func() error {
			return status(cl.node, node.ID, &cpb.NodeStatus{ExternalAddress: "0.0.0.0"})
		}, codes.InvalidArgument},
		{"UpdateNodeStatus/non-canonical address", func() error {
			return status(cl.node, node.ID, &cpb.NodeStatus{ExternalAddress: "2001:DB8::1"})
		}, codes.InvalidArgument},
		{"UpdateNodeStatus/IPv4-mapped address", func() error {
			return status(cl.node, node.ID, &cpb.NodeStatus{ExternalAddress: "::ffff:10.0.0.1"})
		}, codes.InvalidArgument},
		{"UpdateNodeStatus/bad port", func() error {
			return status(cl.node, node.ID, &cpb.NodeStatus{ExternalAddress: node.Host, RunningCurator: &cpb.NodeStatus_RunningCurator{Port: 70000}})
		}, codes.InvalidArgument},
		{"UpdateNodeStatus/oversized version", func() error {
			return status(cl.node, node.ID, &cpb.NodeStatus{ExternalAddress: node.Host, Version: &cpb.Version{Release: strings.Repeat("v", 1000)}})
		}, codes.InvalidArgument},
		{"UpdateNodeStatus/bad boot ID", func() error {
			return status(cl.node, node.ID, &cpb.NodeStatus{ExternalAddress: node.Host, BootId: make([]byte, 15)})
		}, codes.InvalidArgument},
		{"UpdateNodeStatus/malformed node ID", func() error {
			return status(cl.node, "me", &cpb.NodeStatus{ExternalAddress: node.Host})
		}, codes.InvalidArgument},
		{"UpdateNodeStatus/other node", func() error {
			return status(cl.node, other.ID, &cpb.NodeStatus{ExternalAddress: node.Host})
		}, codes.PermissionDenied},
		{"UpdateNodeStatus/owner", func() error {
			return status(cl.owner, node.ID, &cpb.NodeStatus{ExternalAddress: node.Host})
		}, codes.PermissionDenied},
		{"UpdateNodeStatus/bare key", func() error {
			return status(cl.upNode, node.ID, &cpb.NodeStatus{ExternalAddress: node.Host})
		}, codes.Unauthenticated},
		{"Heartbeat/owner", func() error {
			stream, err := cur(cl.owner).Heartbeat(ctx)
			if err != nil {
				return err
			}
			// The server may refuse the stream before the request is
			// sent; Send then fails with io.EOF and Recv has the status.
			if err := stream.Send(&ipb.HeartbeatUpdateRequest{}); err != nil && !errors.Is(err, io.EOF) {
				return err
			}
			_, err = stream.Recv()
			return err
		}, codes.PermissionDenied},
		{"RegisterNode/no ticket", func() error {
			return register(cl.newKey, &ipb.RegisterNodeRequest{JoinKey: key()})
		}, codes.InvalidArgument},
		{"RegisterNode/oversized ticket", func() error {
			return register(cl.newKey, &ipb.RegisterNodeRequest{RegisterTicket: make([]byte, 300), JoinKey: key()})
		}, codes.InvalidArgument},
		{"RegisterNode/wrong ticket", func() error {
			return register(cl.newKey, &ipb.RegisterNodeRequest{RegisterTicket: make([]byte, len(ticket)), JoinKey: key()})
		}, codes.PermissionDenied},
		{"RegisterNode/truncated ticket", func() error {
			return register(cl.newKey, &ipb.RegisterNodeRequest{RegisterTicket: ticket[:len(ticket)-1], JoinKey: key()})
		}, codes.PermissionDenied},
		{"RegisterNode/no join key", func() error {
			return register(cl.newKey, &ipb.RegisterNodeRequest{RegisterTicket: ticket})
		}, codes.InvalidArgument},
		{"RegisterNode/short join key", func() error {
			return register(cl.newKey, &ipb.RegisterNodeRequest{RegisterTicket: ticket, JoinKey: make([]byte, 16)})
		}, codes.InvalidArgument},
		{"RegisterNode/join key is node key", func() error {
			return register(cl.newKey, &ipb.RegisterNodeRequest{RegisterTicket: ticket, JoinKey: unregistered.PublicKey()})
		}, codes.InvalidArgument},
		{"RegisterNode/join key of other node", func() error {
			return register(cl.newKey, &ipb.RegisterNodeRequest{RegisterTicket: ticket, JoinKey: node.JoinKey.Public().(ed25519.PublicKey), HaveLocalTpm: true})
		}, codes.FailedPrecondition},
		{"RegisterNode/invalid label", func() error {
			return register(cl.newKey, &ipb.RegisterNodeRequest{RegisterTicket: ticket, JoinKey: key(), HaveLocalTpm: true, Labels: &cpb.NodeLabels{Pairs: []*cpb.NodeLabels_Pair{{Key: "a/"}}}})
		}, codes.InvalidArgument},
		{"RegisterNode/duplicate label", func() error {
			return register(cl.newKey, &ipb.RegisterNodeRequest{RegisterTicket: ticket, JoinKey: key(), HaveLocalTpm: true, Labels: &cpb.NodeLabels{Pairs: []*cpb.NodeLabels_Pair{{Key: "a"}, {Key: "a", Value: "b"}}}})
		}, codes.InvalidArgument},
		{"RegisterNode/too many labels", func() error {
			return register(cl.newKey, &ipb.RegisterNodeRequest{RegisterTicket: ticket, JoinKey: key(), HaveLocalTpm: true, Labels: labels(129)})
		}, codes.InvalidArgument},
		{"RegisterNode/no TPM", func() error {
			return register(cl.newKey, &ipb.RegisterNodeRequest{RegisterTicket: ticket, JoinKey: key()})
		}, codes.PermissionDenied},
		{"RegisterNode/UP node", func() error {
			return register(cl.upNode, &ipb.RegisterNodeRequest{RegisterTicket: ticket, JoinKey: node.JoinKey.Public().(ed25519.PublicKey), HaveLocalTpm: true})
		}, codes.FailedPrecondition},
		{"RegisterNode/anonymous", func() error {
			return register(cl.anonymous, &ipb.RegisterNodeRequest{RegisterTicket: ticket, JoinKey: key(), HaveLocalTpm: true})
		}, codes.Unauthenticated},
		{"RegisterNode/node certificate", func() error {
			return register(cl.node, &ipb.RegisterNodeRequest{RegisterTicket: ticket, JoinKey: key(), HaveLocalTpm: true})
		}, codes.Unauthenticated},
		{"CommitNode/no storage security", func() error {
			_, err := cur(cl.newNode).CommitNode(ctx, &ipb.CommitNodeRequest{ClusterUnlockKey: make([]byte, 32)})
			return err
		}, codes.InvalidArgument},
		{"CommitNode/unknown storage security", func() error {
			_, err := cur(cl.newNode).CommitNode(ctx, &ipb.CommitNodeRequest{ClusterUnlockKey: make([]byte, 32), StorageSecurity: 99})
			return err
		}, codes.InvalidArgument},
		{"CommitNode/short unlock key", func() error {
			_, err := cur(cl.newNode).CommitNode(ctx, &ipb.CommitNodeRequest{ClusterUnlockKey: make([]byte, 31), StorageSecurity: cpb.NodeStorageSecurity_NODE_STORAGE_SECURITY_AUTHENTICATED_ENCRYPTED})
			return err
		}, codes.InvalidArgument},
		{"CommitNode/oversized unlock key", func() error {
			_, err := cur(cl.newNode).CommitNode(ctx, &ipb.CommitNodeRequest{ClusterUnlockKey: make([]byte, 4096), StorageSecurity: cpb.NodeStorageSecurity_NODE_STORAGE_SECURITY_AUTHENTICATED_ENCRYPTED})
			return err
		}, codes.InvalidArgument},
		{"CommitNode/unlock key for insecure storage", func() error {
			_, err := cur(cl.newNode).CommitNode(ctx, &ipb.CommitNodeRequest{ClusterUnlockKey: make([]byte, 32), StorageSecurity: cpb.NodeStorageSecurity_NODE_STORAGE_SECURITY_INSECURE})
			return err
		}, codes.InvalidArgument},
		{"CommitNode/storage against policy", func() error {
			_, err := cur(cl.newNode).CommitNode(ctx, &ipb.CommitNodeRequest{ClusterUnlockKey: make([]byte, 32), StorageSecurity: cpb.NodeStorageSecurity_NODE_STORAGE_SECURITY_ENCRYPTED})
			return err
		}, codes.FailedPrecondition},
		{"CommitNode/not approved", func() error {
			_, err := cur(cl.newNode).CommitNode(ctx, &ipb.CommitNodeRequest{ClusterUnlockKey: make([]byte, 32), StorageSecurity: cpb.NodeStorageSecurity_NODE_STORAGE_SECURITY_AUTHENTICATED_ENCRYPTED})
			return err
		}, codes.PermissionDenied},
		{"CommitNode/unregistered", func() error {
			_, err := cur(cl.newKey).CommitNode(ctx, &ipb.CommitNodeRequest{ClusterUnlockKey: make([]byte, 32), StorageSecurity: cpb.NodeStorageSecurity_NODE_STORAGE_SECURITY_AUTHENTICATED_ENCRYPTED})
			return err
		}, codes.NotFound},
		{"CommitNode/anonymous", func() error {
			_, err := cur(cl.anonymous).CommitNode(ctx, &ipb.CommitNodeRequest{ClusterUnlockKey: make([]byte, 32), StorageSecurity: cpb.NodeStorageSecurity_NODE_STORAGE_SECURITY_AUTHENTICATED_ENCRYPTED})
			return err
		}, codes.Unauthenticated},
		{"JoinNode/unknown join key", func() error {
			_, err := cur(cl.newKey).JoinNode(ctx, &ipb.JoinNodeRequest{UsingSealedConfiguration: true})
			return err
		}, codes.NotFound},
		{"JoinNode/anonymous", func() error {
			_, err := cur(cl.anonymous).JoinNode(ctx, &ipb.JoinNodeRequest{UsingSealedConfiguration: true})
			return err
		}, codes.Unauthenticated},
		{"IssueCertificate/no kind", func() error {
			_, err := cur(cl.node).IssueCertificate(ctx, &ipb.IssueCertificateRequest{})
			return err
		}, codes.InvalidArgument},
		{"IssueCertificate/missing key", func() error {
			_, err := cur(cl.node).IssueCertificate(ctx, worker(key(), nil, key()))
			return err
		}, codes.InvalidArgument},
		{"IssueCertificate/oversized key", func() error {
			_, err := cur(cl.node).IssueCertificate(ctx, worker(key(), key(), make([]byte, 1000)))
			return err
		}, codes.InvalidArgument},
		{"IssueCertificate/no role", func() error {
			_, err := cur(cl.node).IssueCertificate(ctx, worker(key(), key(), key()))
			return err
		}, codes.PermissionDenied},
		{"IssueCertificate/owner", func() error {
			_, err := cur(cl.owner).IssueCertificate(ctx, worker(key(), key(), key()))
			return err
		}, codes.PermissionDenied},
		{"UpdateNodeClusterNetworking/missing", func() error { return clusternet(cl.node, nil) }, codes.InvalidArgument},
		{"UpdateNodeClusterNetworking/no key", func() error {
			return clusternet(cl.node, &cpb.NodeClusterNetworking{Prefixes: prefixes("10.192.0.0/24")})
		}, codes.InvalidArgument},
		{"UpdateNodeClusterNetworking/oversized key", func() error {
			return clusternet(cl.node, &cpb.NodeClusterNetworking{WireguardPubkey: long})
		}, codes.InvalidArgument},
		{"UpdateNodeClusterNetworking/too many prefixes", func() error {
			return clusternet(cl.node, &cpb.NodeClusterNetworking{WireguardPubkey: wgKey(), Prefixes: prefixes(manyPrefixes...)})
		}, codes.InvalidArgument},
		{"UpdateNodeClusterNetworking/malformed prefix", func() error {
			return clusternet(cl.node, &cpb.NodeClusterNetworking{WireguardPubkey: wgKey(), Prefixes: prefixes("10.192.0.0")})
		}, codes.InvalidArgument},
		{"UpdateNodeClusterNetworking/foreign prefix", func() error {
			return clusternet(cl.node, &cpb.NodeClusterNetworking{WireguardPubkey: wgKey(), Prefixes: prefixes(other.Host + "/32")})
		}, codes.InvalidArgument},
		{"UpdateNodeClusterNetworking/taken key", func() error {
			return clusternet(cl.node, &cpb.NodeClusterNetworking{WireguardPubkey: takenWGKey, Prefixes: prefixes("10.192.0.0/24")})
		}, codes.OK},
		{"UpdateNodeClusterNetworking/key of other node", func() error {
			otherConn, err := other.Conn()
			if err != nil {
				return err
			}
			return clusternet(otherConn, &cpb.NodeClusterNetworking{WireguardPubkey: takenWGKey})
		}, codes.FailedPrecondition},
		{"UpdateNodeClusterNetworking/owner", func() error {
			return clusternet(cl.owner, &cpb.NodeClusterNetworking{WireguardPubkey: wgKey()})
		}, codes.PermissionDenied},
		{"GetConsensusStatus/nobody", func() error {
			_, err := cur(cl.nobody).GetConsensusStatus(ctx, &ipb.GetConsensusStatusRequest{})
			return err
		}, codes.PermissionDenied},
		{"GetConsensusStatus/bare key", func() error {
			_, err := cur(cl.upNode).GetConsensusStatus(ctx, &ipb.GetConsensusStatusRequest{})
			return err
		}, codes.Unauthenticated},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before, err := c.State(ctx)
			if err != nil {
				t.Fatal(err)
			}
			wantCode(t, "call", tc.call(), tc.want)
			if tc.want == codes.OK {
				return
			}
			after, err := c.State(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if !equalState(before, after) {
				for k := range after {
					if before[k] != after[k] {
						t.Errorf("refused call changed %s", k)
					}
				}
				for k := range before {
					if _, ok := after[k]; !ok {
						t.Errorf("refused call deleted %s", k)
					}
				}
			}
		})
	}
}
