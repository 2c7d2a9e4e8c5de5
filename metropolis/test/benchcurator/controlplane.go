package benchcurator

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"metropolis.dev/metropolis/node"
	"metropolis.dev/metropolis/node/core/curator/curatortest"
	ipb "metropolis.dev/metropolis/node/core/curator/proto/api"
	"metropolis.dev/metropolis/node/core/rpc"
	"metropolis.dev/metropolis/node/core/rpc/resolver"
)

// handoffFile is the file in the handoff directory through which the
// control-plane process tells the benchmark how to reach it. It appears,
// complete, once the control plane serves.
const handoffFile = "controlplane.json"

// handoff is what the benchmark needs from the control-plane process.
type handoff struct {
	// CA is the cluster CA certificate (DER).
	CA []byte `json:"ca"`
	// OwnerCertificate (DER) and OwnerKey (ed25519) authenticate as the
	// cluster owner.
	OwnerCertificate []byte `json:"owner_certificate"`
	OwnerKey         []byte `json:"owner_key"`
	// RegisterTicket lets nodes register.
	RegisterTicket []byte `json:"register_ticket"`
	// Curators are the hosts the curators listen on, at
	// node.CuratorServicePort.
	Curators []string `json:"curators"`
	// Leader is the host of the curator that led when the control plane
	// came up.
	Leader string `json:"leader"`
	// Pprof is the host:port of the process's net/http/pprof handlers.
	Pprof string `json:"pprof"`
}

// ServeControlPlane starts a cluster of members curators in this process
// for the duration of t, with curatortest, and writes what the benchmark
// needs to reach it into dir. It also serves net/http/pprof on a loopback
// port, so that the benchmark can profile the control plane.
func ServeControlPlane(t testing.TB, dir string, members int) {
	t.Helper()
	c := curatortest.New(t, curatortest.Options{Curators: members})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ticket, err := c.RegisterTicket(ctx)
	if err != nil {
		t.Fatalf("getting the register ticket: %v", err)
	}
	leader, err := c.Leader(ctx)
	if err != nil {
		t.Fatalf("finding the leader: %v", err)
	}
	pprofAddr, err := servePprof(t)
	if err != nil {
		t.Fatalf("serving pprof: %v", err)
	}
	h := handoff{
		CA:               c.CA.Raw,
		OwnerCertificate: c.Owner.Certificate[0],
		OwnerKey:         c.OwnerKey,
		RegisterTicket:   ticket,
		Leader:           leader.Host,
		Pprof:            pprofAddr,
	}
	for _, cur := range c.Curators {
		h.Curators = append(h.Curators, cur.Host)
	}
	b, err := json.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	// Written under another name and renamed, so that the benchmark never
	// reads half a file.
	tmp := filepath.Join(dir, handoffFile+".tmp")
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, handoffFile)); err != nil {
		t.Fatal(err)
	}
}

// servePprof serves the net/http/pprof handlers on a loopback port until
// the test ends, and returns its address.
func servePprof(t testing.TB) (string, error) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(lis)
	t.Cleanup(func() { srv.Close() })
	return lis.Addr().String(), nil
}

// controlPlane is the benchmark's view of the control-plane process.
type controlPlane struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	exited chan struct{}
	// waitErr is why the process exited, once exited is closed.
	waitErr error
	logPath string

	handoff  handoff
	ca       *x509.Certificate
	owner    tls.Certificate
	resolver *resolver.Resolver
	// ownerConn reaches the leader as the owner.
	ownerConn *grpc.ClientConn
	// viaResolver makes nodes connect through the resolver rather than
	// to leaderAddr, the leader's host:port when the control plane came
	// up.
	viaResolver bool
	leaderAddr  string
}

// startupTimeout bounds how long the control plane may take to come up.
const startupTimeout = 3 * time.Minute

// stopTimeout bounds how long the control plane may take to shut down once
// asked before it is killed.
const stopTimeout = time.Minute

// startControlPlane starts cmd, which must call ServeControlPlane with
// dir, and waits until it serves. The process runs until stop is called
// or ctx is done; it is told to stop by closing its standard input.
func startControlPlane(ctx context.Context, cmd *exec.Cmd, dir string, viaResolver bool) (*controlPlane, error) {
	cp := &controlPlane{cmd: cmd, exited: make(chan struct{}), logPath: filepath.Join(dir, "controlplane.log"), viaResolver: viaResolver}
	logFile, err := os.Create(cp.logPath)
	if err != nil {
		return nil, err
	}
	defer logFile.Close()
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if cp.stdin, err = cmd.StdinPipe(); err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting the control plane: %w", err)
	}
	go func() {
		cp.waitErr = cmd.Wait()
		close(cp.exited)
	}()
	if err := cp.awaitHandoff(ctx, filepath.Join(dir, handoffFile)); err != nil {
		cp.stop()
		return nil, err
	}
	if err := cp.connectOwner(ctx); err != nil {
		cp.stop()
		return nil, err
	}
	leader, err := cp.currentLeader(ctx)
	if err != nil {
		cp.stop()
		return nil, err
	}
	cp.leaderAddr = net.JoinHostPort(leader.LeaderHost, strconv.Itoa(int(leader.LeaderPort)))
	return cp, nil
}

// pid is the control-plane process's ID.
func (cp *controlPlane) pid() int {
	return cp.cmd.Process.Pid
}

// awaitHandoff polls for the handoff file until it appears or the process
// exits.
func (cp *controlPlane) awaitHandoff(ctx context.Context, path string) error {
	ctx, cancel := context.WithTimeout(ctx, startupTimeout)
	defer cancel()
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		b, err := os.ReadFile(path)
		if err == nil {
			if err := json.Unmarshal(b, &cp.handoff); err != nil {
				return fmt.Errorf("reading %s: %w", path, err)
			}
			return nil
		}
		if !errors.Is(err, os.ErrNotExist) {
			return err
		}
		select {
		case <-t.C:
		case <-cp.exited:
			return fmt.Errorf("control plane exited before serving (%v); its output:\n%s", cp.waitErr, cp.logTail())
		case <-ctx.Done():
			return fmt.Errorf("control plane did not come up: %w; its output:\n%s", ctx.Err(), cp.logTail())
		}
	}
}

// connectOwner parses the handoff and connects to the leader as the owner.
func (cp *controlPlane) connectOwner(ctx context.Context) error {
	h := cp.handoff
	ca, err := x509.ParseCertificate(h.CA)
	if err != nil {
		return fmt.Errorf("handoff: CA certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(h.OwnerCertificate)
	if err != nil {
		return fmt.Errorf("handoff: owner certificate: %w", err)
	}
	if len(h.OwnerKey) != ed25519.PrivateKeySize {
		return fmt.Errorf("handoff: owner key is %d bytes, want %d", len(h.OwnerKey), ed25519.PrivateKeySize)
	}
	if len(h.Curators) == 0 {
		return errors.New("handoff: no curators")
	}
	cp.ca = ca
	cp.owner = tls.Certificate{Certificate: [][]byte{h.OwnerCertificate}, PrivateKey: ed25519.PrivateKey(h.OwnerKey), Leaf: leaf}
	cp.resolver = resolver.New(ctx)
	for _, host := range h.Curators {
		cp.resolver.AddEndpoint(resolver.NodeByHostPort(host, node.CuratorServicePort))
	}
	cp.ownerConn, err = cp.dial(rpc.NewAuthenticatedCredentials(cp.owner, rpc.WantRemoteCluster(ca)))
	return err
}

// dial connects to the curator leader the way nodes do, through the
// metropolis resolver seeded with all curators. Calls wait for the leader
// rather than fail while it is not known yet.
func (cp *controlPlane) dial(creds credentials.TransportCredentials) (*grpc.ClientConn, error) {
	return grpc.NewClient(resolver.Scheme+":///control",
		grpc.WithTransportCredentials(creds),
		grpc.WithResolvers(cp.resolver),
		grpc.WithDefaultCallOptions(grpc.WaitForReady(true)),
	)
}

// dialNode connects a node, authenticated with creds, to the leader: with
// viaResolver the way nodes do, through dial, otherwise with a single
// connection to the leader.
func (cp *controlPlane) dialNode(creds credentials.TransportCredentials) (*grpc.ClientConn, error) {
	if cp.viaResolver {
		return cp.dial(creds)
	}
	return grpc.NewClient("passthrough:///"+cp.leaderAddr,
		grpc.WithTransportCredentials(creds),
		grpc.WithDefaultCallOptions(grpc.WaitForReady(true)),
	)
}

// currentLeader asks the leader where the leader is.
func (cp *controlPlane) currentLeader(ctx context.Context) (*ipb.GetCurrentLeaderResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	stream, err := ipb.NewCuratorLocalClient(cp.ownerConn).GetCurrentLeader(ctx, &ipb.GetCurrentLeaderRequest{})
	if err != nil {
		return nil, fmt.Errorf("asking for the leader: %w", err)
	}
	res, err := stream.Recv()
	if err != nil {
		return nil, fmt.Errorf("asking for the leader: %w", err)
	}
	return res, nil
}

// stop asks the control plane to shut down and waits for it, killing it if
// it takes longer than stopTimeout.
func (cp *controlPlane) stop() error {
	if cp.ownerConn != nil {
		cp.ownerConn.Close()
	}
	if cp.resolver != nil {
		cp.resolver.Close()
	}
	cp.stdin.Close()
	select {
	case <-cp.exited:
	case <-time.After(stopTimeout):
		cp.cmd.Process.Kill()
		<-cp.exited
		return fmt.Errorf("control plane did not stop within %v and was killed", stopTimeout)
	}
	if cp.waitErr != nil {
		return fmt.Errorf("control plane failed: %w; its output:\n%s", cp.waitErr, cp.logTail())
	}
	return nil
}

// logTail returns the end of the control plane's output.
func (cp *controlPlane) logTail() string {
	b, err := os.ReadFile(cp.logPath)
	if err != nil {
		return err.Error()
	}
	const keep = 8 << 10
	if len(b) > keep {
		b = b[len(b)-keep:]
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			b = b[i+1:]
		}
	}
	return string(b)
}

// goroutines returns the number of goroutines of the control plane.
func (cp *controlPlane) goroutines(ctx context.Context) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+cp.handoff.Pprof+"/debug/pprof/goroutine?debug=1", nil)
	if err != nil {
		return 0, err
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, fmt.Errorf("counting goroutines: %w", err)
	}
	defer res.Body.Close()
	// The text form starts with "goroutine profile: total N".
	var n int
	if _, err := fmt.Fscanf(res.Body, "goroutine profile: total %d\n", &n); err != nil {
		return 0, fmt.Errorf("counting goroutines: %w", err)
	}
	return n, nil
}

// fetchProfile saves the control plane's pprof profile at path (for
// example "profile?seconds=30" or "heap") to file.
func (cp *controlPlane) fetchProfile(ctx context.Context, path, file string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+cp.handoff.Pprof+"/debug/pprof/"+path, nil)
	if err != nil {
		return err
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("fetching profile %s: %s", path, res.Status)
	}
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, res.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
