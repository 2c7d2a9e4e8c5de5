package resolver

import (
	"context"
	"crypto/ed25519"
	"crypto/x509"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"

	ipb "metropolis.dev/metropolis/node/core/curator/proto/api"
	"metropolis.dev/metropolis/node/core/identity"
	"metropolis.dev/metropolis/node/core/rpc"
	"metropolis.dev/osbase/event/memory"
)

// followTimeout bounds how long the client may take to follow a leader
// change, generously for -race on a busy machine.
const followTimeout = 30 * time.Second

// testCluster is a cluster CA signing directly and a leader that fake
// curators report.
type testCluster struct {
	ca    *x509.Certificate
	caKey ed25519.PrivateKey
	// leader is the index of the leading curator in curators.
	leader   memory.Value[int]
	curators []*fakeCurator
}

func newTestCluster(t *testing.T) *testCluster {
	t.Helper()
	pub, key, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	c := &testCluster{caKey: key}
	c.ca = c.sign(t, identity.CACertificate(), pub, nil)
	return c
}

func (c *testCluster) sign(t *testing.T, template x509.Certificate, pub ed25519.PublicKey, parent *x509.Certificate) *x509.Certificate {
	t.Helper()
	template.SerialNumber = big.NewInt(time.Now().UnixNano())
	template.NotBefore = time.Unix(0, 0)
	template.NotAfter = time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC)
	if parent == nil {
		parent = &template
	}
	der, err := x509.CreateCertificate(nil, &template, parent, pub, c.caKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

// fakeCurator serves CuratorLocal like a curator of the test cluster does:
// GetCurrentLeader streams the cluster's leader, GetCACertificate answers.
type fakeCurator struct {
	ipb.UnimplementedCuratorLocalServer
	cluster *testCluster
	id      string
	// host and port are where the curator is reported to be.
	host string
	port int
	// addr is where the curator listens.
	addr string
	srv  *grpc.Server
	// streams counts GetCurrentLeader calls.
	streams atomic.Int64
}

// startCurator starts a curator listening on host, which is reported to
// be at reportedHost if that is not empty.
func (c *testCluster) startCurator(t *testing.T, host, reportedHost string) *fakeCurator {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	cert := c.sign(t, identity.NodeCertificate(pub), pub, c.ca)
	creds, err := identity.NewNodeCredentials(priv, cert.Raw, c.ca.Raw)
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeCurator{cluster: c, id: creds.ID(), addr: lis.Addr().String(), host: host}
	if reportedHost != "" {
		f.host = reportedHost
	}
	f.port = lis.Addr().(*net.TCPAddr).Port
	security := &rpc.ServerSecurity{NodeCredentials: creds}
	f.srv = grpc.NewServer(security.GRPCOptions(nil)...)
	ipb.RegisterCuratorLocalServer(f.srv, f)
	go f.srv.Serve(lis)
	t.Cleanup(f.srv.Stop)
	c.curators = append(c.curators, f)
	return f
}

func (f *fakeCurator) GetCurrentLeader(_ *ipb.GetCurrentLeaderRequest, srv grpc.ServerStreamingServer[ipb.GetCurrentLeaderResponse]) error {
	f.streams.Add(1)
	w := f.cluster.leader.Watch()
	defer w.Close()
	for {
		i, err := w.Get(srv.Context())
		if err != nil {
			return err
		}
		leader := f.cluster.curators[i]
		if err := srv.Send(&ipb.GetCurrentLeaderResponse{
			LeaderNodeId: leader.id,
			LeaderHost:   leader.host,
			LeaderPort:   int32(leader.port),
			ThisNodeId:   f.id,
		}); err != nil {
			return err
		}
	}
}

func (f *fakeCurator) GetCACertificate(context.Context, *ipb.GetCACertificateRequest) (*ipb.GetCACertificateResponse, error) {
	return &ipb.GetCACertificateResponse{IdentityCaCertificate: f.cluster.ca.Raw}, nil
}

func (f *fakeCurator) endpoint(t *testing.T) NodeEndpoint {
	t.Helper()
	host, port, err := net.SplitHostPort(f.addr)
	if err != nil {
		t.Fatal(err)
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		t.Fatal(err)
	}
	return NodeByHostPort(host, p)
}

// dial connects to metropolis:///control through r as an unauthenticated
// client of the cluster.
func (c *testCluster) dial(t *testing.T, r *Resolver) *grpc.ClientConn {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	creds, err := rpc.NewEphemeralCredentials(priv, rpc.WantRemoteCluster(c.ca))
	if err != nil {
		t.Fatal(err)
	}
	return dial(t, r, creds)
}

func dial(t *testing.T, r *Resolver, creds credentials.TransportCredentials) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient("metropolis:///control", grpc.WithResolvers(r), grpc.WithTransportCredentials(creds))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// awaitServedBy calls conn until a call is served by want.
func awaitServedBy(t *testing.T, conn *grpc.ClientConn, want *fakeCurator) {
	t.Helper()
	cl := ipb.NewCuratorLocalClient(conn)
	deadline := time.Now().Add(followTimeout)
	var last string
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		var p peer.Peer
		_, err := cl.GetCACertificate(ctx, &ipb.GetCACertificateRequest{}, grpc.Peer(&p))
		cancel()
		switch {
		case err != nil:
			last = err.Error()
		case p.Addr.String() == want.addr:
			return
		default:
			last = "served by " + p.Addr.String()
		}
	}
	t.Fatalf("calls not served by %s (%s) within %v; last: %s", want.id, want.addr, followTimeout, last)
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}

// TestFollowLeader follows the leader across changes and the loss of
// curators, on one ClientConn.
func TestFollowLeader(t *testing.T) {
	c := newTestCluster(t)
	a := c.startCurator(t, "127.0.0.1", "")
	b := c.startCurator(t, "127.0.0.2", "")
	d := c.startCurator(t, "127.0.0.3", "")
	c.leader.Set(0)

	r := New(context.Background(), WithLogger(testLogger(t)))
	defer r.Close()
	// Only b is known at first; the client learns of a and d as leaders.
	r.AddEndpoint(b.endpoint(t))
	conn := c.dial(t, r)

	awaitServedBy(t, conn, a)
	c.leader.Set(2)
	awaitServedBy(t, conn, d)
	c.leader.Set(1)
	awaitServedBy(t, conn, b)

	// The seeded curator goes away. The client still knows a and d from
	// when they led.
	b.srv.Stop()
	c.leader.Set(0)
	awaitServedBy(t, conn, a)

	// The leader itself goes away.
	a.srv.Stop()
	c.leader.Set(2)
	awaitServedBy(t, conn, d)
}

// TestWithoutCuratorUpdater follows the leader by asking only the seeded
// curator.
func TestWithoutCuratorUpdater(t *testing.T) {
	c := newTestCluster(t)
	a := c.startCurator(t, "127.0.0.1", "")
	b := c.startCurator(t, "127.0.0.2", "")
	d := c.startCurator(t, "127.0.0.3", "")
	c.leader.Set(0)

	r := New(context.Background(), WithLogger(testLogger(t)), WithoutCuratorUpdater())
	defer r.Close()
	r.AddEndpoint(b.endpoint(t))
	conn := c.dial(t, r)

	awaitServedBy(t, conn, a)
	c.leader.Set(2)
	awaitServedBy(t, conn, d)
	if n, m := a.streams.Load(), d.streams.Load(); n != 0 || m != 0 {
		t.Errorf("unseeded curators were asked for the leader (%d and %d times)", n, m)
	}
}

// TestOverride reaches the leader at an override address instead of where
// it is reported to be.
func TestOverride(t *testing.T) {
	c := newTestCluster(t)
	// 192.0.2.0/24 is reserved for documentation: nothing answers there.
	a := c.startCurator(t, "127.0.0.1", "192.0.2.1")
	c.leader.Set(0)

	r := New(context.Background(), WithLogger(testLogger(t)), WithoutCuratorUpdater())
	defer r.Close()
	r.AddEndpoint(a.endpoint(t))
	r.AddOverride(a.id, a.endpoint(t))
	awaitServedBy(t, c.dial(t, r), a)
}

// TestUnknownName refuses names other than control.
func TestUnknownName(t *testing.T) {
	c := newTestCluster(t)
	a := c.startCurator(t, "127.0.0.1", "")
	c.leader.Set(0)
	r := New(context.Background())
	defer r.Close()
	r.AddEndpoint(a.endpoint(t))
	_, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	creds, err := rpc.NewEphemeralCredentials(priv, rpc.WantRemoteCluster(c.ca))
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient("metropolis:///elsewhere", grpc.WithResolvers(r), grpc.WithTransportCredentials(creds))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), followTimeout)
	defer cancel()
	_, err = ipb.NewCuratorLocalClient(conn).GetCACertificate(ctx, &ipb.GetCACertificateRequest{})
	if err == nil {
		t.Fatal("call to metropolis:///elsewhere succeeded")
	}
	if want := `unknown name "elsewhere"`; !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not contain %q", err, want)
	}
}

// TestDeadEndpoint checks that a curator that cannot be reached does not
// fail calls while another one can tell where the leader is, and that calls
// fail fast, with the reason, once none can.
func TestDeadEndpoint(t *testing.T) {
	c := newTestCluster(t)
	a := c.startCurator(t, "127.0.0.1", "")
	c.leader.Set(0)
	// A port nothing listens on: connections to it are refused at once,
	// before a answers.
	l, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := l.Addr().String()
	l.Close()
	host, port, _ := net.SplitHostPort(dead)
	p, _ := strconv.Atoi(port)

	for i := range 20 {
		r := New(context.Background())
		r.AddEndpoint(NodeByHostPort(host, p))
		r.AddEndpoint(a.endpoint(t))
		conn := c.dial(t, r)
		ctx, cancel := context.WithTimeout(context.Background(), followTimeout)
		_, err := ipb.NewCuratorLocalClient(conn).GetCACertificate(ctx, &ipb.GetCACertificateRequest{})
		cancel()
		r.Close()
		if err != nil {
			t.Fatalf("attempt %d: a call failed although %s leads: %v", i, a.addr, err)
		}
	}

	r := New(context.Background())
	defer r.Close()
	r.AddEndpoint(NodeByHostPort(host, p))
	conn := c.dial(t, r)
	ctx, cancel := context.WithTimeout(context.Background(), followTimeout)
	defer cancel()
	_, err = ipb.NewCuratorLocalClient(conn).GetCACertificate(ctx, &ipb.GetCACertificateRequest{})
	if want := "no curator told where the leader is"; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("call with only a dead curator: got %v, want an error saying %q", err, want)
	}
	if ctx.Err() != nil {
		t.Error("the call with only a dead curator waited for its deadline instead of failing fast")
	}
}

func TestEndpoints(t *testing.T) {
	for _, tc := range []struct {
		ep   NodeEndpoint
		want string
	}{
		{NodeByHostPort("10.0.0.1", 1234), "10.0.0.1:1234"},
		{NodeByHostPort("fd00::1", 1234), "[fd00::1]:1234"},
		{NodeAtAddressWithDefaultPort("10.0.0.1"), fmt.Sprintf("10.0.0.1:%d", 7835)},
	} {
		if got := tc.ep.String(); got != tc.want {
			t.Errorf("endpoint %q, want %q", got, tc.want)
		}
	}
}

func TestChooseLeader(t *testing.T) {
	report := func(leader, this string, seq uint64) view {
		return view{leader: &ipb.GetCurrentLeaderResponse{LeaderNodeId: leader, LeaderHost: "h", LeaderPort: 1, ThisNodeId: this}, seq: seq}
	}
	ep := func(i int) NodeEndpoint { return NodeByHostPort("10.0.0."+strconv.Itoa(i), 7835) }
	for _, tc := range []struct {
		name  string
		views map[NodeEndpoint]view
		want  string
	}{
		{"none", nil, ""},
		{"one follower", map[NodeEndpoint]view{ep(1): report("a", "b", 1)}, "a"},
		{"newest of followers", map[NodeEndpoint]view{ep(1): report("a", "b", 1), ep(2): report("c", "d", 2)}, "c"},
		{"leader over newer follower", map[NodeEndpoint]view{ep(1): report("a", "a", 1), ep(2): report("c", "d", 2)}, "a"},
		{"newest of leaders", map[NodeEndpoint]view{ep(1): report("a", "a", 3), ep(2): report("c", "c", 2), ep(3): report("d", "e", 4)}, "a"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := chooseLeader(tc.views)
			if got.GetLeaderNodeId() != tc.want {
				t.Errorf("chose %q, want %q", got.GetLeaderNodeId(), tc.want)
			}
		})
	}
}
