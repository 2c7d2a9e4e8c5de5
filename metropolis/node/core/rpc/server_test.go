package rpc

import (
	"context"
	"crypto/ed25519"
	"crypto/x509"
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	ipb "metropolis.dev/metropolis/node/core/curator/proto/api"
	"metropolis.dev/metropolis/node/core/identity"
	apb "metropolis.dev/metropolis/proto/api"
	epb "metropolis.dev/metropolis/proto/ext"
	"metropolis.dev/osbase/test/etcdtest"
)

// callTimeout bounds each test RPC, generously for -race on a busy machine.
const callTimeout = 30 * time.Second

func callContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	t.Cleanup(cancel)
	return ctx
}

// testMethod calls one method on conn and names the handler that records
// its PeerInfo ("" for methods without a recording handler).
type testMethod struct {
	name string
	call func(ctx context.Context, conn *grpc.ClientConn) error
}

var (
	getCACertificate = testMethod{"GetCACertificate", func(ctx context.Context, conn *grpc.ClientConn) error {
		_, err := ipb.NewCuratorLocalClient(conn).GetCACertificate(ctx, &ipb.GetCACertificateRequest{})
		return err
	}}
	getRegisterTicket = testMethod{"GetRegisterTicket", func(ctx context.Context, conn *grpc.ClientConn) error {
		_, err := apb.NewManagementClient(conn).GetRegisterTicket(ctx, &apb.GetRegisterTicketRequest{})
		return err
	}}
	getClusterInfo = testMethod{"GetClusterInfo", func(ctx context.Context, conn *grpc.ClientConn) error {
		_, err := apb.NewManagementClient(conn).GetClusterInfo(ctx, &apb.GetClusterInfoRequest{})
		return err
	}}
	getNodes = testMethod{"GetNodes", func(ctx context.Context, conn *grpc.ClientConn) error {
		stream, err := apb.NewManagementClient(conn).GetNodes(ctx, &apb.GetNodesRequest{})
		if err != nil {
			return err
		}
		_, err = stream.Recv()
		return err
	}}
	getLogs = testMethod{"Logs", func(ctx context.Context, conn *grpc.ClientConn) error {
		stream, err := apb.NewNodeManagementClient(conn).Logs(ctx, &apb.GetLogsRequest{})
		if err != nil {
			return err
		}
		_, err = stream.Recv()
		return err
	}}
	healthCheck = testMethod{"Check", func(ctx context.Context, conn *grpc.ClientConn) error {
		_, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
		return err
	}}
)

func TestAuthorization(t *testing.T) {
	etcd := etcdtest.Start(t)
	cluster := newTestCluster(t, etcd, "/cluster-pki/")
	other := newTestCluster(t, etcd, "/other-pki/")
	userPermissions := func(identity string) Permissions {
		if identity == "alice" {
			return NewPermissions(epb.Permission_PERMISSION_READ_CLUSTER_STATUS)
		}
		return DefaultUserPermissions(identity)
	}
	server := startServer(t, cluster, nil, userPermissions)
	want := WantRemoteCluster(cluster.caCert)

	node := cluster.node(t, "client-node")
	ephemeral, ephemeralKey := newEphemeral(t, want)
	callers := []struct {
		name string
		conn *grpc.ClientConn
		// peer is what an authenticated method sees ("" if refused).
		peer string
	}{
		{"node", server.dial(t, NewAuthenticatedCredentials(node.TLSCredentials(), want)),
			"node=true user=false unauthenticated=false id=" + node.ID()},
		{"owner", server.dial(t, NewAuthenticatedCredentials(cluster.user(t, "owner"), want)),
			"node=false user=true unauthenticated=false identity=owner"},
		{"alice", server.dial(t, NewAuthenticatedCredentials(cluster.user(t, "alice"), want)),
			"node=false user=true unauthenticated=false identity=alice"},
		{"bob", server.dial(t, NewAuthenticatedCredentials(cluster.user(t, "bob"), want)),
			"node=false user=true unauthenticated=false identity=bob"},
		{"ephemeral", server.dial(t, ephemeral), ""},
		{"anonymous", server.dial(t, withoutCertificate(t, want)), ""},
		{"node of other cluster", server.dial(t, NewAuthenticatedCredentials(other.node(t, "node").TLSCredentials(), want)), ""},
		{"owner of other cluster", server.dial(t, NewAuthenticatedCredentials(other.user(t, "owner"), want)), ""},
	}
	// unauthenticatedPeer is what GetCACertificate sees of each caller.
	unauthenticatedPeer := map[string]string{
		"node":                   "node=true user=false unauthenticated=true id=" + node.ID(),
		"owner":                  "node=false user=true unauthenticated=true identity=owner",
		"alice":                  "node=false user=true unauthenticated=true identity=alice",
		"bob":                    "node=false user=true unauthenticated=true identity=bob",
		"ephemeral":              fmt.Sprintf("node=false user=false unauthenticated=true key=%x", []byte(ephemeralKey)),
		"anonymous":              "node=false user=false unauthenticated=true",
		"node of other cluster":  "node=false user=false unauthenticated=true",
		"owner of other cluster": "node=false user=false unauthenticated=true",
	}
	U, P, OK := codes.Unauthenticated, codes.PermissionDenied, codes.OK
	wantCodes := map[string]map[string]codes.Code{
		// caller:         GetCACertificate, GetRegisterTicket, GetClusterInfo, GetNodes, Logs, Check
		"node":                   {"GetCACertificate": OK, "GetRegisterTicket": P, "GetClusterInfo": OK, "GetNodes": OK, "Logs": P, "Check": P},
		"owner":                  {"GetCACertificate": OK, "GetRegisterTicket": OK, "GetClusterInfo": OK, "GetNodes": OK, "Logs": OK, "Check": P},
		"alice":                  {"GetCACertificate": OK, "GetRegisterTicket": P, "GetClusterInfo": OK, "GetNodes": OK, "Logs": P, "Check": P},
		"bob":                    {"GetCACertificate": OK, "GetRegisterTicket": P, "GetClusterInfo": P, "GetNodes": P, "Logs": P, "Check": P},
		"ephemeral":              {"GetCACertificate": OK, "GetRegisterTicket": U, "GetClusterInfo": U, "GetNodes": U, "Logs": U, "Check": P},
		"anonymous":              {"GetCACertificate": OK, "GetRegisterTicket": U, "GetClusterInfo": U, "GetNodes": U, "Logs": U, "Check": P},
		"node of other cluster":  {"GetCACertificate": OK, "GetRegisterTicket": U, "GetClusterInfo": U, "GetNodes": U, "Logs": U, "Check": P},
		"owner of other cluster": {"GetCACertificate": OK, "GetRegisterTicket": U, "GetClusterInfo": U, "GetNodes": U, "Logs": U, "Check": P},
	}
	// missing is the permission named when a caller is denied a method.
	missing := map[string]string{
		"GetRegisterTicket": "PERMISSION_GET_REGISTER_TICKET",
		"GetClusterInfo":    "PERMISSION_READ_CLUSTER_STATUS",
		"GetNodes":          "PERMISSION_READ_CLUSTER_STATUS",
		"Logs":              "PERMISSION_READ_NODE_LOGS",
	}

	for _, caller := range callers {
		for _, m := range []testMethod{getCACertificate, getRegisterTicket, getClusterInfo, getNodes, getLogs, healthCheck} {
			t.Run(caller.name+"/"+m.name, func(t *testing.T) {
				err := m.call(callContext(t), caller.conn)
				got := server.rec.take(m.name)
				wantCode := wantCodes[caller.name][m.name]
				if got := status.Code(err); got != wantCode {
					t.Fatalf("code %v (%v), want %v", got, err, wantCode)
				}
				if wantCode == P && missing[m.name] != "" && !strings.Contains(err.Error(), missing[m.name]) {
					t.Errorf("error %q does not name %s", err, missing[m.name])
				}
				if wantCode == P && m.name == "Check" && !strings.Contains(err.Error(), "declares no authorization policy") {
					t.Errorf("error %q does not say the method has no policy", err)
				}
				if wantCode != OK || m.name == "Logs" || m.name == "Check" {
					if got != nil {
						t.Errorf("handler ran for a refused call, with peer %s", describe(got))
					}
					return
				}
				wantPeer := caller.peer
				if m.name == "GetCACertificate" {
					wantPeer = unauthenticatedPeer[caller.name]
				}
				if describe(got) != wantPeer {
					t.Errorf("handler saw %s, want %s", describe(got), wantPeer)
				}
			})
		}
	}

	t.Run("log", func(t *testing.T) {
		logs := server.log.String()
		for _, line := range []string{
			`method=/metropolis.proto.api.Management/GetRegisterTicket peer="user owner" code=OK`,
			`method=/metropolis.proto.api.Management/GetRegisterTicket peer="node ` + node.ID() + `" code=PermissionDenied`,
			`method=/metropolis.proto.api.Management/GetNodes peer="unidentified caller" code=Unauthenticated`,
			fmt.Sprintf(`method=/metropolis.node.core.curator.proto.api.CuratorLocal/GetCACertificate peer="unauthenticated caller with key %x" code=OK`, []byte(ephemeralKey)),
		} {
			if !strings.Contains(logs, line) {
				t.Errorf("log lacks %s", line)
			}
		}
		if strings.Contains(logs, "NodeManagement/Logs") {
			t.Errorf("calls of NodeManagement/Logs were logged")
		}
	})
}

// TestRevocation revokes certificates while the server runs and their
// holders stay connected.
func TestRevocation(t *testing.T) {
	etcd := etcdtest.Start(t)
	cluster := newTestCluster(t, etcd, "/cluster-pki/")
	server := startServer(t, cluster, nil, nil)
	want := WantRemoteCluster(cluster.caCert)

	revokedNode := cluster.node(t, "revoked-node")
	keptNode := cluster.node(t, "kept-node")
	revokedOwner, revokedOwnerLeaf := cluster.issue(t, "revoked-owner", func(ed25519.PublicKey) x509.Certificate {
		return identity.UserCertificate("owner")
	})
	conns := map[string]*grpc.ClientConn{
		"revoked node":  server.dial(t, NewAuthenticatedCredentials(revokedNode.TLSCredentials(), want)),
		"kept node":     server.dial(t, NewAuthenticatedCredentials(keptNode.TLSCredentials(), want)),
		"revoked owner": server.dial(t, NewAuthenticatedCredentials(revokedOwner, want)),
	}
	for name, conn := range conns {
		if err := getClusterInfo.call(callContext(t), conn); err != nil {
			t.Fatalf("%s before revocation: %v", name, err)
		}
	}

	cluster.revoke(t, revokedNode.Certificate())
	server.crl.Store(cluster.revoke(t, revokedOwnerLeaf))

	for name, wantCode := range map[string]codes.Code{
		"revoked node":  codes.Unauthenticated,
		"kept node":     codes.OK,
		"revoked owner": codes.Unauthenticated,
	} {
		err := getClusterInfo.call(callContext(t), conns[name])
		if got := status.Code(err); got != wantCode {
			t.Errorf("%s after revocation: code %v (%v), want %v", name, got, err, wantCode)
		}
		if wantCode == codes.Unauthenticated && !strings.Contains(err.Error(), "revoked") {
			t.Errorf("%s after revocation: error %q does not say revoked", name, err)
		}
	}
	// A revoked node may still call unauthenticated methods, but only as
	// an unauthenticated caller.
	if err := getCACertificate.call(callContext(t), conns["revoked node"]); err != nil {
		t.Fatalf("revoked node calling GetCACertificate: %v", err)
	}
	if got, want := describe(server.rec.take("GetCACertificate")), "node=false user=false unauthenticated=true"; got != want {
		t.Errorf("revoked node seen as %s, want %s", got, want)
	}
}

// TestClientVerification checks how clients verify the server.
func TestClientVerification(t *testing.T) {
	etcd := etcdtest.Start(t)
	cluster := newTestCluster(t, etcd, "/cluster-pki/")
	other := newTestCluster(t, etcd, "/other-pki/")
	server := startServer(t, cluster, nil, nil)
	owner := cluster.user(t, "owner")

	for _, tc := range []struct {
		name    string
		opts    []CredentialsOption
		wantErr string
		// badOptions are options that can never work.
		badOptions bool
	}{
		{"cluster", []CredentialsOption{WantRemoteCluster(cluster.caCert)}, "", false},
		{"cluster and node", []CredentialsOption{WantRemoteCluster(cluster.caCert), WantRemoteNode(server.creds.ID())}, "", false},
		{"insecure", []CredentialsOption{WantInsecure()}, "", false},
		{"other cluster", []CredentialsOption{WantRemoteCluster(other.caCert)}, "not a node of the expected cluster", false},
		{"other node", []CredentialsOption{WantRemoteCluster(cluster.caCert), WantRemoteNode("metropolis-00")}, "want metropolis-00", false},
		{"nothing", nil, "no server verification chosen", true},
		{"node without cluster", []CredentialsOption{WantRemoteNode(server.creds.ID())}, "WantRemoteNode needs WantRemoteCluster", true},
		{"insecure and cluster", []CredentialsOption{WantInsecure(), WantRemoteCluster(cluster.caCert)}, "conflicts", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn := server.dial(t, NewAuthenticatedCredentials(owner, tc.opts...))
			err := getRegisterTicket.call(callContext(t), conn)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("call failed: %v", err)
				}
			} else if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("call error %v, want Unavailable containing %q", err, tc.wantErr)
			}

			_, priv, err := ed25519.GenerateKey(nil)
			if err != nil {
				t.Fatal(err)
			}
			_, err = NewEphemeralCredentials(priv, tc.opts...)
			if tc.badOptions && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Errorf("NewEphemeralCredentials error = %v, want one containing %q", err, tc.wantErr)
			}
			if !tc.badOptions && err != nil {
				t.Errorf("NewEphemeralCredentials: %v", err)
			}
		})
	}
}

// TestRetrieveOwnerCertificate escrows the owner certificate and uses it.
func TestRetrieveOwnerCertificate(t *testing.T) {
	etcd := etcdtest.Start(t)
	cluster := newTestCluster(t, etcd, "/cluster-pki/")
	ownerPub, ownerKey, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	server := startServer(t, cluster, ownerPub, nil)
	want := WantRemoteCluster(cluster.caCert)

	ephemeral, err := NewEphemeralCredentials(ownerKey, want)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := RetrieveOwnerCertificate(callContext(t), apb.NewAAAClient(server.dial(t, ephemeral)), ownerKey)
	if err != nil {
		t.Fatalf("RetrieveOwnerCertificate: %v", err)
	}
	if err := getRegisterTicket.call(callContext(t), server.dial(t, NewAuthenticatedCredentials(*cert, want))); err != nil {
		t.Errorf("calling with the escrowed owner certificate: %v", err)
	}

	// Without a self-signed certificate the server asks for one.
	_, err = RetrieveOwnerCertificate(callContext(t), apb.NewAAAClient(server.dial(t, withoutCertificate(t, want))), ownerKey)
	if err == nil || !strings.Contains(err.Error(), "PROOF_KIND_REFRESH_CERTIFICATE") {
		t.Errorf("RetrieveOwnerCertificate without certificate = %v, want an error naming the needed proof", err)
	}
	// Another key is not the owner's.
	_, otherKey, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	otherCreds, err := NewEphemeralCredentials(otherKey, want)
	if err != nil {
		t.Fatal(err)
	}
	_, err = RetrieveOwnerCertificate(callContext(t), apb.NewAAAClient(server.dial(t, otherCreds)), otherKey)
	if status.Code(err) != codes.PermissionDenied {
		t.Errorf("RetrieveOwnerCertificate with another key = %v, want PermissionDenied", err)
	}
}

func TestPermissions(t *testing.T) {
	all := DefaultUserPermissions("owner")
	if len(all) != 13 || all[epb.Permission_PERMISSION_UNSPECIFIED] {
		t.Errorf("owner has %d permissions (%s), want the 13 defined ones", len(all), all)
	}
	if p := DefaultUserPermissions("alice"); len(p) != 0 {
		t.Errorf("alice has permissions %s, want none", p)
	}
	node := &PeerInfo{Node: &PeerInfoNode{ID: "metropolis-1", Permissions: NodePermissions()}}
	if err := node.CheckPermissions(NewPermissions(epb.Permission_PERMISSION_UPDATE_NODE_SELF, epb.Permission_PERMISSION_READ_CLUSTER_STATUS)); err != nil {
		t.Errorf("node lacks its own permissions: %v", err)
	}
	err := node.CheckPermissions(NewPermissions(epb.Permission_PERMISSION_DELETE_NODE, epb.Permission_PERMISSION_APPROVE_NODE, epb.Permission_PERMISSION_READ_CLUSTER_STATUS))
	if status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), "node metropolis-1 lacks permission PERMISSION_APPROVE_NODE, PERMISSION_DELETE_NODE") {
		t.Errorf("CheckPermissions = %v, want PermissionDenied naming both missing permissions", err)
	}
	unauthenticated := &PeerInfo{Unauthenticated: &PeerInfoUnauthenticated{}}
	if err := unauthenticated.CheckPermissions(NewPermissions(epb.Permission_PERMISSION_READ_CLUSTER_STATUS)); status.Code(err) != codes.PermissionDenied {
		t.Errorf("unauthenticated CheckPermissions = %v, want PermissionDenied", err)
	}
	var none *PeerInfo
	if err := none.CheckPermissions(nil); err != nil {
		t.Errorf("needing nothing: %v", err)
	}
}
