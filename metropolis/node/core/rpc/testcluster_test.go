package rpc

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	ipb "metropolis.dev/metropolis/node/core/curator/proto/api"
	"metropolis.dev/metropolis/node/core/identity"
	apb "metropolis.dev/metropolis/proto/api"
	"metropolis.dev/osbase/pki"
	"metropolis.dev/osbase/test/etcdtest"
)

// testCluster is a cluster PKI in etcd, issued by osbase/pki the way the
// curator issues it.
type testCluster struct {
	kv     *etcdtest.Server
	ns     pki.Namespace
	ca     *pki.Certificate
	caCert *x509.Certificate
}

func newTestCluster(t testing.TB, etcd *etcdtest.Server, prefix string) *testCluster {
	t.Helper()
	c := &testCluster{kv: etcd, ns: pki.Namespaced(prefix)}
	c.ca = &pki.Certificate{Namespace: &c.ns, Issuer: pki.SelfSigned, Template: identity.CACertificate(), Name: "ca"}
	der, err := c.ca.Ensure(context.Background(), etcd.Client)
	if err != nil {
		t.Fatalf("ensuring CA: %v", err)
	}
	if c.caCert, err = x509.ParseCertificate(der); err != nil {
		t.Fatal(err)
	}
	return c
}

// issue issues template for a new key, stored under name.
func (c *testCluster) issue(t testing.TB, name string, template func(ed25519.PublicKey) x509.Certificate) (tls.Certificate, *x509.Certificate) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	cert := &pki.Certificate{
		Namespace: &c.ns, Issuer: c.ca, Name: name, Mode: pki.CertificateExternal,
		Template: template(pub), PublicKey: pub,
	}
	der, err := cert.Ensure(context.Background(), c.kv.Client)
	if err != nil {
		t.Fatalf("issuing %s: %v", name, err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: priv, Leaf: leaf}, leaf
}

func (c *testCluster) node(t testing.TB, name string) *identity.NodeCredentials {
	t.Helper()
	cert, _ := c.issue(t, name, identity.NodeCertificate)
	creds, err := identity.NewNodeCredentials(cert.PrivateKey.(ed25519.PrivateKey), cert.Certificate[0], c.caCert.Raw)
	if err != nil {
		t.Fatal(err)
	}
	return creds
}

func (c *testCluster) user(t testing.TB, name string) tls.Certificate {
	t.Helper()
	cert, _ := c.issue(t, "user-"+name, func(ed25519.PublicKey) x509.Certificate { return identity.UserCertificate(name) })
	return cert
}

// revoke revokes cert and returns the CA's new CRL.
func (c *testCluster) revoke(t testing.TB, cert *x509.Certificate) *x509.RevocationList {
	t.Helper()
	ctx := context.Background()
	if err := c.ca.Revoke(ctx, c.kv.Client, cert); err != nil {
		t.Fatal(err)
	}
	crl, err := c.ca.CRL(ctx, c.kv.Client)
	if err != nil {
		t.Fatal(err)
	}
	return crl
}

// peerRecorder remembers the PeerInfo of the last call of each method.
type peerRecorder struct {
	mu    sync.Mutex
	peers map[string]*PeerInfo
}

func (r *peerRecorder) record(ctx context.Context, method string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.peers == nil {
		r.peers = make(map[string]*PeerInfo)
	}
	r.peers[method] = GetPeerInfo(ctx)
}

// take returns and forgets the PeerInfo of the last call of method.
func (r *peerRecorder) take(method string) *PeerInfo {
	r.mu.Lock()
	defer r.mu.Unlock()
	p := r.peers[method]
	delete(r.peers, method)
	return p
}

// The test services answer trivially and record who called them.

type curatorLocal struct {
	ipb.UnimplementedCuratorLocalServer
	rec *peerRecorder
}

func (s *curatorLocal) GetCACertificate(ctx context.Context, _ *ipb.GetCACertificateRequest) (*ipb.GetCACertificateResponse, error) {
	s.rec.record(ctx, "GetCACertificate")
	return &ipb.GetCACertificateResponse{}, nil
}

type management struct {
	apb.UnimplementedManagementServer
	rec *peerRecorder
}

func (s *management) GetRegisterTicket(ctx context.Context, _ *apb.GetRegisterTicketRequest) (*apb.GetRegisterTicketResponse, error) {
	s.rec.record(ctx, "GetRegisterTicket")
	return &apb.GetRegisterTicketResponse{Ticket: []byte("ticket")}, nil
}

func (s *management) GetClusterInfo(ctx context.Context, _ *apb.GetClusterInfoRequest) (*apb.GetClusterInfoResponse, error) {
	s.rec.record(ctx, "GetClusterInfo")
	return &apb.GetClusterInfoResponse{}, nil
}

func (s *management) GetNodes(_ *apb.GetNodesRequest, srv grpc.ServerStreamingServer[apb.Node]) error {
	s.rec.record(srv.Context(), "GetNodes")
	return srv.Send(&apb.Node{Id: "a"})
}

type nodeManagement struct {
	apb.UnimplementedNodeManagementServer
}

func (nodeManagement) Logs(_ *apb.GetLogsRequest, srv grpc.ServerStreamingServer[apb.GetLogsResponse]) error {
	return srv.Send(&apb.GetLogsResponse{})
}

// aaa escrows owner certificates like the curator does: for the
// self-signed key of an unauthenticated caller that equals ownerKey.
type aaa struct {
	apb.UnimplementedAAAServer
	cluster  *testCluster
	ownerKey ed25519.PublicKey
}

func (s *aaa) Escrow(srv grpc.BidiStreamingServer[apb.EscrowFromClient, apb.EscrowFromServer]) error {
	req, err := srv.Recv()
	if err != nil {
		return err
	}
	pi := GetPeerInfo(srv.Context())
	key := pi.Unauthenticated.SelfSignedPublicKey
	if key == nil {
		if err := srv.Send(&apb.EscrowFromServer{Needed: []apb.EscrowFromServer_ProofKind{apb.EscrowFromServer_PROOF_KIND_REFRESH_CERTIFICATE}}); err != nil {
			return err
		}
		return status.Error(codes.Unauthenticated, "no self-signed certificate presented")
	}
	if !key.Equal(ed25519.PublicKey(req.Parameters.GetPublicKey())) || !key.Equal(s.ownerKey) {
		return status.Error(codes.PermissionDenied, "not the owner key")
	}
	owner := &pki.Certificate{
		Namespace: &s.cluster.ns, Issuer: s.cluster.ca, Name: "owner", Mode: pki.CertificateExternal,
		Template: identity.UserCertificate("owner"), PublicKey: key,
	}
	der, err := owner.Ensure(srv.Context(), s.cluster.kv.Client)
	if err != nil {
		return status.Errorf(codes.Unavailable, "issuing: %v", err)
	}
	return srv.Send(&apb.EscrowFromServer{
		Fulfilled:          []apb.EscrowFromServer_ProofKind{apb.EscrowFromServer_PROOF_KIND_REFRESH_CERTIFICATE},
		EmittedCertificate: der,
	})
}

// health is a real service whose methods declare no authorization policy.
type health struct {
	healthpb.UnimplementedHealthServer
}

func (health) Check(context.Context, *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	return &healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_SERVING}, nil
}

// lockedBuffer collects log output from concurrent handlers.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// testServer is a node serving the test services with ServerSecurity.
type testServer struct {
	addr  string
	creds *identity.NodeCredentials
	rec   *peerRecorder
	log   *lockedBuffer
	crl   atomic.Pointer[x509.RevocationList]
}

func startServer(t testing.TB, cluster *testCluster, ownerKey ed25519.PublicKey, userPermissions func(string) Permissions) *testServer {
	t.Helper()
	s := &testServer{
		creds: cluster.node(t, "server"),
		rec:   &peerRecorder{},
		log:   &lockedBuffer{},
	}
	security := &ServerSecurity{
		NodeCredentials: s.creds,
		RevocationList:  s.crl.Load,
		UserPermissions: userPermissions,
	}
	logger := slog.New(slog.NewTextHandler(s.log, nil))
	srv := grpc.NewServer(security.GRPCOptions(logger)...)
	ipb.RegisterCuratorLocalServer(srv, &curatorLocal{rec: s.rec})
	apb.RegisterManagementServer(srv, &management{rec: s.rec})
	apb.RegisterNodeManagementServer(srv, nodeManagement{})
	apb.RegisterAAAServer(srv, &aaa{cluster: cluster, ownerKey: ownerKey})
	healthpb.RegisterHealthServer(srv, health{})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.addr = lis.Addr().String()
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	return s
}

// dial connects to the server with creds, closing on test cleanup.
func (s *testServer) dial(t testing.TB, creds credentials.TransportCredentials) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient("passthrough:///"+s.addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func newEphemeral(t testing.TB, opts ...CredentialsOption) (credentials.TransportCredentials, ed25519.PublicKey) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	creds, err := NewEphemeralCredentials(priv, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return creds, pub
}

// withoutCertificate returns credentials that present no certificate.
func withoutCertificate(t testing.TB, opts ...CredentialsOption) credentials.TransportCredentials {
	t.Helper()
	config, err := ClientTLSConfig(nil, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return credentials.NewTLS(config)
}

func describe(p *PeerInfo) string {
	if p == nil {
		return "<nil>"
	}
	s := fmt.Sprintf("node=%v user=%v unauthenticated=%v", p.Node != nil, p.User != nil, p.Unauthenticated != nil)
	if p.Node != nil {
		s += " id=" + p.Node.ID
	}
	if p.User != nil {
		s += " identity=" + p.User.Identity
	}
	if p.Unauthenticated != nil && p.Unauthenticated.SelfSignedPublicKey != nil {
		s += fmt.Sprintf(" key=%x", []byte(p.Unauthenticated.SelfSignedPublicKey))
	}
	return s
}
