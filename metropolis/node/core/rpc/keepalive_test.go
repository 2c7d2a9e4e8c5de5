package rpc

import (
	"context"
	"io"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/connectivity"

	ipb "metropolis.dev/metropolis/node/core/curator/proto/api"
	"metropolis.dev/osbase/test/etcdtest"
)

// freezingProxy forwards TCP connections to a server until it is frozen;
// from then on it forwards nothing and closes nothing, like a peer that lost
// power.
type freezingProxy struct {
	addr   string
	frozen chan struct{}
}

func startFreezingProxy(t *testing.T, target string) *freezingProxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	p := &freezingProxy{addr: l.Addr().String(), frozen: make(chan struct{})}
	go func() {
		for {
			in, err := l.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", target)
			if err != nil {
				in.Close()
				continue
			}
			t.Cleanup(func() { in.Close(); out.Close() })
			go p.pipe(in, out)
			go p.pipe(out, in)
		}
	}()
	return p
}

// pipe copies from src to dst until the proxy freezes.
func (p *freezingProxy) pipe(dst io.Writer, src io.Reader) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if err != nil {
			return
		}
		select {
		case <-p.frozen:
			return
		default:
		}
		if _, err := dst.Write(buf[:n]); err != nil {
			return
		}
	}
}

func (p *freezingProxy) freeze() { close(p.frozen) }

// TestKeepalive checks that an idle connection stays up for longer than
// the client's ping interval (the server allows the pings), and that a
// connection to a server that stops answering without closing anything is
// given up within the keepalive's time, rather than the kernel's TCP
// timeout.
func TestKeepalive(t *testing.T) {
	etcd := etcdtest.Start(t)
	cluster := newTestCluster(t, etcd, "/cluster-pki/")
	server := startServer(t, cluster, nil, nil)
	proxy := startFreezingProxy(t, server.addr)

	creds, _ := newEphemeral(t, WantRemoteCluster(cluster.caCert))
	conn, err := grpc.NewClient("passthrough:///"+proxy.addr, grpc.WithTransportCredentials(creds), ClientKeepalive())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	call := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err := ipb.NewCuratorLocalClient(conn).GetCACertificate(ctx, &ipb.GetCACertificateRequest{})
		return err
	}
	if err := call(); err != nil {
		t.Fatal(err)
	}

	// Idle for more than two ping intervals: the server must not take the
	// pings for abuse and close the connection.
	idle := time.Now().Add(2*KeepaliveTime + KeepaliveTime/2)
	for time.Now().Before(idle) {
		ctx, cancel := context.WithDeadline(context.Background(), idle)
		changed := conn.WaitForStateChange(ctx, connectivity.Ready)
		cancel()
		if changed {
			t.Fatalf("the idle connection left READY for %v", conn.GetState())
		}
	}
	if err := call(); err != nil {
		t.Fatalf("after being idle: %v", err)
	}

	proxy.freeze()
	ctx, cancel := context.WithTimeout(context.Background(), KeepaliveTime+KeepaliveTimeout+10*time.Second)
	defer cancel()
	if !conn.WaitForStateChange(ctx, connectivity.Ready) {
		t.Fatal("the connection to the frozen server still counts as READY after the keepalive's time")
	}
}
