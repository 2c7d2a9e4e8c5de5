package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/binary"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"metropolis.dev/metropolis/node"
	"metropolis.dev/metropolis/node/core/curator/curatortest"
	"metropolis.dev/metropolis/node/core/rpc"
	apb "metropolis.dev/metropolis/proto/api"
	lpb "metropolis.dev/osbase/logtree/proto"
	"metropolis.dev/osbase/pki/pkitest"
)

// cli runs metroctl in-process, as an operator would run it, with one
// configuration directory.
type cli struct {
	config    string
	endpoints []string
	workDir   string
}

func newCLI(t *testing.T, endpoints ...string) *cli {
	return &cli{config: filepath.Join(t.TempDir(), "metroctl"), endpoints: endpoints, workDir: t.TempDir()}
}

// result is what one metroctl invocation printed and returned.
type result struct {
	stdout, stderr string
	err            error
}

func (r result) String() string {
	return fmt.Sprintf("err: %v\nstdout:\n%s\nstderr:\n%s", r.err, r.stdout, r.stderr)
}

// run runs metroctl with args, non-interactively.
func (c *cli) run(args ...string) result {
	return c.exec("", false, args...)
}

func (c *cli) exec(input string, interactive bool, args ...string) result {
	var stdout, stderr bytes.Buffer
	e := &env{
		stdin:       strings.NewReader(input),
		stdout:      &stdout,
		stderr:      &stderr,
		interactive: interactive,
		workDir:     c.workDir,
	}
	full := []string{"--config", c.config}
	for _, ep := range c.endpoints {
		full = append(full, "--endpoints", ep)
	}
	full = append(full, args...)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := execute(ctx, e, full)
	return result{stdout: stdout.String(), stderr: stderr.String(), err: err}
}

// mustRun runs metroctl and fails the test if it fails.
func (c *cli) mustRun(t *testing.T, args ...string) result {
	t.Helper()
	r := c.run(args...)
	if r.err != nil {
		t.Fatalf("metroctl %s: %v", strings.Join(args, " "), r)
	}
	return r
}

// mustFail runs metroctl, which must fail with an error containing each of
// wants.
func (c *cli) mustFail(t *testing.T, args []string, wants ...string) result {
	t.Helper()
	r := c.run(args...)
	if r.err == nil {
		t.Fatalf("metroctl %s succeeded, want error containing %q\n%v", strings.Join(args, " "), wants, r)
	}
	for _, want := range wants {
		if !strings.Contains(r.err.Error(), want) {
			t.Errorf("metroctl %s: error does not contain %q:\n%v", strings.Join(args, " "), want, r)
		}
	}
	return r
}

// writeOwnerKey puts key into the configuration directory, as init-owner
// would have.
func writeOwnerKey(t *testing.T, configDir string, key ed25519.PrivateKey) {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(configDir, 0o700); err != nil {
		t.Fatal(err)
	}
	data := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	if err := os.WriteFile(filepath.Join(configDir, "owner-key.pem"), data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// foreignCA returns the CA certificate of a cluster that does not exist.
func foreignCA(t *testing.T) *x509.Certificate {
	return pkitest.CA(t, "Metropolis Cluster CA")
}

// randomLoopbackHost returns a random address in 127.0.0.0/8 outside the
// 127.0.0.0/16 most services use, so that concurrently running tests do not
// collide on the fixed node ports.
func randomLoopbackHost() string {
	var b [3]byte
	rand.Read(b[:])
	return fmt.Sprintf("127.%d.%d.%d", b[0]%250+2, b[1], b[2]%250+2)
}

// nodeManagement is a NodeManagement service of a simulated node, serving
// over real TLS with the node's credentials, that records what it is asked
// and serves canned logs, mesh status and probe results. Probes through the
// mesh take twice as long as over the external network.
type nodeManagement struct {
	apb.UnimplementedNodeManagementServer
	backlog, stream []*lpb.LogEntry
	mesh            *apb.GetMeshStatusResponse

	mu      sync.Mutex
	logs    []*apb.GetLogsRequest
	reboots []apb.RebootRequest_Type
	probes  []*apb.ProbePeerRequest
}

// Where and how fast the simulated node's probes go.
const (
	fakeMeshProbeAddress     = "10.192.0.3:7836"
	fakeExternalProbeAddress = "10.1.0.3:7836"
	fakeMeshProbeTime        = 2 * time.Second
	fakeExternalProbeTime    = time.Second
)

// fakeMeshStatus is the mesh status the simulated node reports: one peer it
// exchanged traffic with and one that never answered.
func fakeMeshStatus() *apb.GetMeshStatusResponse {
	return &apb.GetMeshStatusResponse{
		WireguardPubkey: "mFakeKeyOfTheSimulatedNodeAAAAAAAAAAAAAAAA=",
		MeshAddress:     "10.192.0.2",
		ListenPort:      node.WireGuardPort,
		Peers: []*apb.GetMeshStatusResponse_Peer{
			{
				NodeId:           "metropolis-11111111111111111111111111111111",
				WireguardPubkey:  "pFakeKeyOfTheFirstPeerAAAAAAAAAAAAAAAAAAAA=",
				Endpoint:         "10.1.0.3:7838",
				AllowedPrefixes:  []string{"10.1.0.3/32", "10.192.0.3/32", "10.200.1.0/24"},
				LastHandshake:    timestamppb.New(time.Date(2026, 3, 4, 13, 30, 45, 0, time.UTC)),
				ReceivedBytes:    1536,
				TransmittedBytes: 3 << 20,
			},
			{
				NodeId:          "metropolis-22222222222222222222222222222222",
				WireguardPubkey: "pFakeKeyOfTheSecondPeerAAAAAAAAAAAAAAAAAAA=",
				Endpoint:        "10.1.0.4:7838",
				AllowedPrefixes: []string{"10.1.0.4/32", "10.192.0.4/32"},
			},
		},
	}
}

// serveNodeManagement starts the NodeManagement service of n at n's address.
func serveNodeManagement(t *testing.T, n *curatortest.Node) *nodeManagement {
	t.Helper()
	leveled := &lpb.LogEntry{Dn: "root.network.dhcp", Kind: &lpb.LogEntry_Leveled{Leveled: &lpb.Leveled{
		Lines:     []string{"Got a lease for 10.1.0.2"},
		Timestamp: timestamppb.New(time.Date(2026, 3, 4, 13, 30, 45, 0, time.UTC)),
		Severity:  lpb.Severity_INFO,
		Location:  "dhcp.go:42",
	}}}
	raw := &lpb.LogEntry{Dn: "root.time.chrony", Kind: &lpb.LogEntry_Raw{Raw: &lpb.Raw{
		Data:      "chronyd started",
		Timestamp: timestamppb.New(time.Date(2026, 3, 4, 13, 30, 46, 0, time.UTC)),
	}}}
	streamed := &lpb.LogEntry{Dn: "root.network", Kind: &lpb.LogEntry_Leveled{Leveled: &lpb.Leveled{
		Lines:     []string{"Link is down"},
		Timestamp: timestamppb.New(time.Date(2026, 3, 4, 13, 31, 0, 0, time.UTC)),
		Severity:  lpb.Severity_WARNING,
		Location:  "link.go:7",
	}}}
	s := &nodeManagement{backlog: []*lpb.LogEntry{leveled, raw}, stream: []*lpb.LogEntry{streamed}, mesh: fakeMeshStatus()}
	security := &rpc.ServerSecurity{NodeCredentials: n.NodeCredentials()}
	srv := grpc.NewServer(security.GRPCOptions(nil)...)
	apb.RegisterNodeManagementServer(srv, s)
	lis, err := net.Listen("tcp", net.JoinHostPort(n.Host, strconv.Itoa(node.NodeManagementPort)))
	if err != nil {
		t.Fatalf("listening as node management of %s: %v", n.ID, err)
	}
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	return s
}

func (s *nodeManagement) Logs(req *apb.GetLogsRequest, srv grpc.ServerStreamingServer[apb.GetLogsResponse]) error {
	s.mu.Lock()
	s.logs = append(s.logs, req)
	s.mu.Unlock()
	if req.BacklogMode != apb.GetLogsRequest_BACKLOG_MODE_DISABLE {
		if err := srv.Send(&apb.GetLogsResponse{BacklogEntries: s.backlog}); err != nil {
			return err
		}
	}
	if req.StreamMode == apb.GetLogsRequest_STREAM_MODE_UNBUFFERED {
		if err := srv.Send(&apb.GetLogsResponse{StreamEntries: s.stream}); err != nil {
			return err
		}
	}
	return nil
}

func (s *nodeManagement) Reboot(_ context.Context, req *apb.RebootRequest) (*apb.RebootResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reboots = append(s.reboots, req.Type)
	return &apb.RebootResponse{}, nil
}

func (s *nodeManagement) GetMeshStatus(context.Context, *apb.GetMeshStatusRequest) (*apb.GetMeshStatusResponse, error) {
	return s.mesh, nil
}

func (s *nodeManagement) ProbePeer(_ context.Context, req *apb.ProbePeerRequest) (*apb.ProbePeerResponse, error) {
	s.mu.Lock()
	s.probes = append(s.probes, proto.Clone(req).(*apb.ProbePeerRequest))
	s.mu.Unlock()
	if req.Bytes == 0 || req.Bytes > 1<<30 {
		return nil, status.Errorf(codes.InvalidArgument, "bytes %d: want 1 to 1GiB", req.Bytes)
	}
	switch req.Path {
	case apb.ProbePeerRequest_PATH_MESH:
		return &apb.ProbePeerResponse{Address: fakeMeshProbeAddress, Bytes: req.Bytes, Duration: durationpb.New(fakeMeshProbeTime)}, nil
	case apb.ProbePeerRequest_PATH_EXTERNAL:
		return &apb.ProbePeerResponse{Address: fakeExternalProbeAddress, Bytes: req.Bytes, Duration: durationpb.New(fakeExternalProbeTime)}, nil
	default:
		return nil, status.Errorf(codes.InvalidArgument, "path %v", req.Path)
	}
}

// takeProbeRequests returns the ProbePeer requests the service got since
// the last call.
func (s *nodeManagement) takeProbeRequests() []*apb.ProbePeerRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	probes := s.probes
	s.probes = nil
	return probes
}

// lastLogsRequest returns the last Logs request the service got.
func (s *nodeManagement) lastLogsRequest() *apb.GetLogsRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.logs) == 0 {
		return nil
	}
	return proto.Clone(s.logs[len(s.logs)-1]).(*apb.GetLogsRequest)
}

// socksProxy is a minimal SOCKS5 proxy (no authentication, CONNECT only)
// that counts the connections it made.
type socksProxy struct {
	addr        string
	connections atomic.Int64

	mu    sync.Mutex
	conns map[net.Conn]bool
}

func startSOCKSProxy(t *testing.T) *socksProxy {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &socksProxy{addr: lis.Addr().String(), conns: map[net.Conn]bool{}}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		lis.Close()
		p.mu.Lock()
		for c := range p.conns {
			c.Close()
		}
		p.mu.Unlock()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			conn, err := lis.Accept()
			if err != nil {
				return
			}
			p.mu.Lock()
			p.conns[conn] = true
			p.mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() {
					p.mu.Lock()
					delete(p.conns, conn)
					p.mu.Unlock()
					conn.Close()
				}()
				if err := p.serve(conn); err != nil {
					t.Logf("SOCKS proxy: %v", err)
				}
			}()
		}
	}()
	return p
}

func (p *socksProxy) serve(conn net.Conn) error {
	// Greeting: version, number of methods, methods. Only "no
	// authentication" (0) is offered back.
	head := make([]byte, 2)
	if _, err := io.ReadFull(conn, head); err != nil {
		return err
	}
	if _, err := io.ReadFull(conn, make([]byte, head[1])); err != nil {
		return err
	}
	if _, err := conn.Write([]byte{5, 0}); err != nil {
		return err
	}
	// Request: version, command (1 = CONNECT), reserved, address type.
	req := make([]byte, 4)
	if _, err := io.ReadFull(conn, req); err != nil {
		return err
	}
	if req[0] != 5 || req[1] != 1 {
		return fmt.Errorf("unsupported request %v", req)
	}
	var host string
	switch req[3] {
	case 1:
		ip := make([]byte, 4)
		if _, err := io.ReadFull(conn, ip); err != nil {
			return err
		}
		host = net.IP(ip).String()
	case 3:
		n := make([]byte, 1)
		if _, err := io.ReadFull(conn, n); err != nil {
			return err
		}
		name := make([]byte, n[0])
		if _, err := io.ReadFull(conn, name); err != nil {
			return err
		}
		host = string(name)
	default:
		return fmt.Errorf("unsupported address type %d", req[3])
	}
	portBytes := make([]byte, 2)
	if _, err := io.ReadFull(conn, portBytes); err != nil {
		return err
	}
	target, err := net.Dial("tcp", net.JoinHostPort(host, strconv.Itoa(int(binary.BigEndian.Uint16(portBytes)))))
	if err != nil {
		// General failure.
		conn.Write([]byte{5, 1, 0, 1, 0, 0, 0, 0, 0, 0})
		return err
	}
	p.mu.Lock()
	p.conns[target] = true
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		delete(p.conns, target)
		p.mu.Unlock()
		target.Close()
	}()
	p.connections.Add(1)
	if _, err := conn.Write([]byte{5, 0, 0, 1, 0, 0, 0, 0, 0, 0}); err != nil {
		return err
	}
	done := make(chan struct{})
	go func() {
		io.Copy(target, conn)
		target.(*net.TCPConn).CloseWrite()
		close(done)
	}()
	io.Copy(conn, target)
	conn.(*net.TCPConn).CloseWrite()
	<-done
	return nil
}

// tableRows parses the output of a table into rows of fields, checking the
// header.
func tableRows(t *testing.T, out string, header string) [][]string {
	t.Helper()
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) == 0 || strings.Join(strings.Fields(lines[0]), " ") != header {
		t.Fatalf("table header is %q, want %q", lines[0], header)
	}
	var rows [][]string
	for _, l := range lines[1:] {
		rows = append(rows, strings.Fields(l))
	}
	return rows
}
