// Package etcdtest runs a real, single-member etcd server inside a test
// process, so that code built on etcd is tested against etcd itself rather
// than a fake. Each server lives in the test's temporary directory, listens
// only on loopback and is torn down by the test's cleanup.
package etcdtest

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

// startTimeout bounds how long a fresh server may take to elect itself
// leader. It is generous because tests run under -race on small machines.
const startTimeout = 60 * time.Second

// Server is a running embedded etcd member.
type Server struct {
	// Endpoint is the client address (host:port) of the server.
	Endpoint string
	// Client is a client connected to the server, closed on test cleanup.
	Client *clientv3.Client

	etcd *embed.Etcd
}

// Start launches an embedded etcd server for the duration of the test t.
func Start(t testing.TB) *Server {
	t.Helper()

	cfg := embed.NewConfig()
	cfg.Name = "test"
	cfg.Dir = t.TempDir()
	// The default logger prints every raft step; tests only care about
	// failures, which surface as errors from the client.
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())

	clientURL := url.URL{Scheme: "http", Host: "127.0.0.1:0"}
	peerURL := url.URL{Scheme: "http", Host: freeLoopbackAddress(t)}
	cfg.ListenClientUrls = []url.URL{clientURL}
	cfg.AdvertiseClientUrls = []url.URL{clientURL}
	cfg.ListenPeerUrls = []url.URL{peerURL}
	cfg.AdvertisePeerUrls = []url.URL{peerURL}
	cfg.InitialCluster = fmt.Sprintf("%s=%s", cfg.Name, peerURL.String())

	e, err := embed.StartEtcd(cfg)
	if err != nil {
		t.Fatalf("starting embedded etcd: %v", err)
	}
	t.Cleanup(e.Close)
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		t.Fatalf("embedded etcd failed while starting: %v", err)
	case <-time.After(startTimeout):
		t.Fatalf("embedded etcd not ready after %v", startTimeout)
	}

	s := &Server{
		// The client listener was bound to port 0, so ask it where it
		// actually listens.
		Endpoint: e.Clients[0].Addr().String(),
		etcd:     e,
	}
	s.Client = s.NewClient(t)
	return s
}

// NewClient returns a further, independent client of the server, closed on
// test cleanup. Tests use it to act as a second participant.
func (s *Server) NewClient(t testing.TB) *clientv3.Client {
	t.Helper()
	cl, err := clientv3.New(clientv3.Config{
		Endpoints:   []string{s.Endpoint},
		DialTimeout: 10 * time.Second,
		Logger:      zap.NewNop(),
	})
	if err != nil {
		t.Fatalf("connecting to embedded etcd: %v", err)
	}
	t.Cleanup(func() { cl.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	if _, err := cl.Get(ctx, "etcdtest-ping"); err != nil {
		t.Fatalf("embedded etcd does not answer: %v", err)
	}
	return cl
}

// freeLoopbackAddress returns a loopback TCP address that was free a moment
// ago. etcd's peer listener cannot be bound to port 0 because the member's
// advertised peer URL must be known before it starts.
func freeLoopbackAddress(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("finding a free port: %v", err)
	}
	defer l.Close()
	return l.Addr().String()
}
