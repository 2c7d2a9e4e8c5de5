package mgmt

import (
	"context"
	"encoding/base64"
	"net"
	"net/netip"
	"strconv"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"metropolis.dev/metropolis/node/core/clusternet"
	"metropolis.dev/metropolis/node/core/netprobe"
	"metropolis.dev/metropolis/node/core/rpc"
	"metropolis.dev/metropolis/proto/api"
	"metropolis.dev/osbase/logtree"
	"metropolis.dev/osbase/supervisor"
)

// fixedMesh stands in for the node's mesh, whose kernel interface a unit
// test cannot own: it reports a fixed state and device.
type fixedMesh struct {
	state  clusternet.State
	device *wgtypes.Device
}

func (m *fixedMesh) State() clusternet.State { return m.state }

func (m *fixedMesh) Device() (*wgtypes.Device, error) {
	if m.device == nil {
		return nil, net.ErrClosed
	}
	return m.device, nil
}

func testWireguardKey(t *testing.T) wgtypes.Key {
	t.Helper()
	k, err := wgtypes.GeneratePrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestGetMeshStatus(t *testing.T) {
	self, a, b := testWireguardKey(t), testWireguardKey(t).PublicKey(), testWireguardKey(t).PublicKey()
	handshake := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	mesh := &fixedMesh{
		state: clusternet.State{
			PublicKey:   self.PublicKey(),
			Port:        7838,
			MeshAddress: netip.MustParseAddr("10.223.0.1"),
			Peers: []clusternet.Peer{
				{NodeID: "a", PublicKey: a, Endpoint: netip.MustParseAddrPort("10.1.0.3:7838"), Prefixes: []netip.Prefix{netip.MustParsePrefix("10.223.0.2/32")}},
				{NodeID: "b", PublicKey: b, Endpoint: netip.MustParseAddrPort("10.1.0.4:7838")},
			},
		},
		device: &wgtypes.Device{
			PublicKey:  self.PublicKey(),
			ListenPort: 7838,
			Peers: []wgtypes.Peer{
				{PublicKey: a, LastHandshakeTime: handshake, ReceiveBytes: 100, TransmitBytes: 200},
				{PublicKey: b},
			},
		},
	}
	addr, c := serve(t, &Service{LogTree: logtree.New(), Mesh: mesh})
	client := dial(t, addr, rpc.NewAuthenticatedCredentials(c.user(t, "owner"), rpc.WantRemoteCluster(c.ca)))
	res, err := client.GetMeshStatus(t.Context(), &api.GetMeshStatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	pub := self.PublicKey()
	if res.WireguardPubkey != base64.StdEncoding.EncodeToString(pub[:]) || res.MeshAddress != "10.223.0.1" || res.ListenPort != 7838 {
		t.Errorf("own key %s, address %q, port %d; want the node's key, 10.223.0.1, 7838", res.WireguardPubkey, res.MeshAddress, res.ListenPort)
	}
	if len(res.Peers) != 2 {
		t.Fatalf("%d peers, want 2", len(res.Peers))
	}
	pa, pb := res.Peers[0], res.Peers[1]
	if pa.NodeId != "a" || pa.Endpoint != "10.1.0.3:7838" || len(pa.AllowedPrefixes) != 1 || pa.AllowedPrefixes[0] != "10.223.0.2/32" ||
		!pa.LastHandshake.AsTime().Equal(handshake) || pa.ReceivedBytes != 100 || pa.TransmittedBytes != 200 {
		t.Errorf("peer a is %v", pa)
	}
	if pb.NodeId != "b" || pb.LastHandshake != nil {
		t.Errorf("peer b is %v, want no handshake", pb)
	}

	mesh.device = nil
	if _, err := client.GetMeshStatus(t.Context(), &api.GetMeshStatusRequest{}); status.Code(err) != codes.Unavailable {
		t.Errorf("without the interface: %v, want Unavailable", err)
	}
}

// freePort returns a TCP port nothing listens on at the moment.
func freePort(t *testing.T) uint16 {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return uint16(ln.Addr().(*net.TCPAddr).Port)
}

func TestProbePeer(t *testing.T) {
	port := freePort(t)
	receiver := &netprobe.Server{
		ListenAddress: net.JoinHostPort("127.0.0.1", strconv.Itoa(int(port))),
		Allowed:       func(netip.Addr) bool { return true },
	}
	supervisor.TestHarness(t, receiver.Run)
	loopback := netip.MustParseAddr("127.0.0.1")
	mesh := &fixedMesh{state: clusternet.State{Peers: []clusternet.Peer{
		{NodeID: "up", Endpoint: netip.AddrPortFrom(loopback, 7838), MeshAddress: loopback},
		{NodeID: "new", Endpoint: netip.AddrPortFrom(loopback, 7838)},
	}}}
	addr, c := serve(t, &Service{LogTree: logtree.New(), Mesh: mesh, ProbePort: port})
	owner := dial(t, addr, rpc.NewAuthenticatedCredentials(c.user(t, "owner"), rpc.WantRemoteCluster(c.ca)))

	// The receiver may still be starting: the first probe is retried
	// until a deadline.
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	for {
		_, err := owner.ProbePeer(ctx, &api.ProbePeerRequest{NodeId: "up", Path: api.ProbePeerRequest_PATH_MESH, Bytes: 1})
		if err == nil {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("the probe receiver never answered: %v", err)
		case <-time.After(20 * time.Millisecond):
		}
	}

	for _, tc := range []struct {
		name string
		req  *api.ProbePeerRequest
		want codes.Code
	}{
		{"mesh", &api.ProbePeerRequest{NodeId: "up", Path: api.ProbePeerRequest_PATH_MESH, Bytes: 3 << 20, Marker: "m"}, codes.OK},
		{"external", &api.ProbePeerRequest{NodeId: "up", Path: api.ProbePeerRequest_PATH_EXTERNAL, Bytes: 1000}, codes.OK},
		{"no node", &api.ProbePeerRequest{Path: api.ProbePeerRequest_PATH_MESH, Bytes: 1}, codes.InvalidArgument},
		{"no path", &api.ProbePeerRequest{NodeId: "up", Bytes: 1}, codes.InvalidArgument},
		{"no bytes", &api.ProbePeerRequest{NodeId: "up", Path: api.ProbePeerRequest_PATH_MESH}, codes.InvalidArgument},
		{"too many bytes", &api.ProbePeerRequest{NodeId: "up", Path: api.ProbePeerRequest_PATH_MESH, Bytes: netprobe.MaxBytes + 1}, codes.InvalidArgument},
		{"long marker", &api.ProbePeerRequest{NodeId: "up", Path: api.ProbePeerRequest_PATH_MESH, Bytes: 1, Marker: string(make([]byte, 65))}, codes.InvalidArgument},
		{"unknown node", &api.ProbePeerRequest{NodeId: "gone", Path: api.ProbePeerRequest_PATH_MESH, Bytes: 1}, codes.NotFound},
		{"no mesh address yet", &api.ProbePeerRequest{NodeId: "new", Path: api.ProbePeerRequest_PATH_MESH, Bytes: 1}, codes.FailedPrecondition},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := owner.ProbePeer(t.Context(), tc.req)
			if status.Code(err) != tc.want {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			if err != nil {
				return
			}
			if res.Bytes != tc.req.Bytes || res.Address != net.JoinHostPort("127.0.0.1", strconv.Itoa(int(port))) || res.Duration.AsDuration() <= 0 {
				t.Errorf("probe sent %d bytes to %s in %v; want %d bytes to the receiver", res.Bytes, res.Address, res.Duration.AsDuration(), tc.req.Bytes)
			}
		})
	}

	t.Run("nobody else may probe", func(t *testing.T) {
		other := dial(t, addr, rpc.NewAuthenticatedCredentials(c.user(t, "alice"), rpc.WantRemoteCluster(c.ca)))
		_, err := other.ProbePeer(t.Context(), &api.ProbePeerRequest{NodeId: "up", Path: api.ProbePeerRequest_PATH_MESH, Bytes: 1})
		if status.Code(err) != codes.PermissionDenied {
			t.Errorf("got %v, want PermissionDenied", err)
		}
	})
	t.Run("without a mesh", func(t *testing.T) {
		addr, c := serve(t, &Service{LogTree: logtree.New()})
		client := dial(t, addr, rpc.NewAuthenticatedCredentials(c.user(t, "owner"), rpc.WantRemoteCluster(c.ca)))
		_, err := client.ProbePeer(t.Context(), &api.ProbePeerRequest{NodeId: "up", Path: api.ProbePeerRequest_PATH_MESH, Bytes: 1})
		if status.Code(err) != codes.Unimplemented {
			t.Errorf("got %v, want Unimplemented", err)
		}
	})
}
