package core

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/proxy"
	"google.golang.org/grpc"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"metropolis.dev/metropolis/node"
	ipb "metropolis.dev/metropolis/node/core/curator/proto/api"
	"metropolis.dev/metropolis/node/core/rpc"
	"metropolis.dev/metropolis/node/core/rpc/resolver"
)

// DefaultConnectTimeout is how long calls wait for the cluster to become
// reachable unless Cluster.ConnectTimeout says otherwise.
const DefaultConnectTimeout = 30 * time.Second

// slowConnectNotice is how long connecting takes before the operator is
// told that it is still trying.
const slowConnectNotice = 3 * time.Second

// ErrUnreachable is wrapped by the errors of calls that gave up waiting for
// the cluster to become reachable.
var ErrUnreachable = errors.New("cluster unreachable")

// Cluster says how to reach a cluster.
type Cluster struct {
	// Endpoints are addresses of nodes running a curator (see
	// ParseEndpoint). Any one of them that answers is enough: it tells where
	// the curator leader is.
	Endpoints []string
	// Proxy is the host:port (or socks5://host:port) of a SOCKS5 proxy that
	// every connection goes through. Empty connects directly.
	Proxy string
	// ConnectTimeout is how long a call waits for the cluster to become
	// reachable; zero means DefaultConnectTimeout. Once connected, calls are
	// bounded only by their context.
	ConnectTimeout time.Duration
	// Logger receives logs of how the curator leader is found; nil discards
	// them.
	Logger *slog.Logger
	// Progress receives a line for each step that takes a while or that the
	// operator should know about, such as trusting a CA; nil discards them.
	Progress io.Writer
}

// CAMismatchError says that the cluster reached presents a CA other than the
// trusted one: it is another cluster, or the same one bootstrapped anew.
type CAMismatchError struct {
	// Endpoint that presented the CA.
	Endpoint string
	// Trusted is the CA the client trusts.
	Trusted *x509.Certificate
	// Presented is the CA the endpoint presented.
	Presented *x509.Certificate
}

func (e *CAMismatchError) Error() string {
	return fmt.Sprintf("%s is not the trusted cluster: it presents CA %s, but the trusted CA is %s", e.Endpoint, Fingerprint(e.Presented), Fingerprint(e.Trusted))
}

func (c *Cluster) connectTimeout() time.Duration {
	if c.ConnectTimeout > 0 {
		return c.ConnectTimeout
	}
	return DefaultConnectTimeout
}

func (c *Cluster) progressf(format string, args ...any) {
	if c.Progress != nil {
		fmt.Fprintf(c.Progress, format+"\n", args...)
	}
}

// connector makes the TCP connections of one client connection and
// remembers why the last one, or its TLS handshake, failed, so that a call
// that times out can say why.
type connector struct {
	dial func(ctx context.Context, network, address string) (net.Conn, error)

	mu      sync.Mutex
	lastErr error
}

func (c *Cluster) connector() (*connector, error) {
	if c.Proxy == "" {
		var d net.Dialer
		return &connector{dial: d.DialContext}, nil
	}
	address := strings.TrimPrefix(c.Proxy, "socks5://")
	if _, _, err := net.SplitHostPort(address); err != nil {
		return nil, fmt.Errorf("proxy %q: want host:port of a SOCKS5 proxy: %w", c.Proxy, err)
	}
	d, err := proxy.SOCKS5("tcp", address, nil, &net.Dialer{})
	if err != nil {
		return nil, fmt.Errorf("proxy %q: %w", c.Proxy, err)
	}
	cd, ok := d.(proxy.ContextDialer)
	if !ok {
		return nil, fmt.Errorf("proxy %q: the SOCKS5 dialer cannot be cancelled", c.Proxy)
	}
	return &connector{dial: cd.DialContext}, nil
}

func (d *connector) dialContext(ctx context.Context, address string) (net.Conn, error) {
	conn, err := d.dial(ctx, "tcp", address)
	if err != nil {
		d.record(err)
	}
	return conn, err
}

func (d *connector) record(err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.lastErr = err
}

func (d *connector) last() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.lastErr
}

// recordingCredentials are transport credentials that tell their connector
// about failed handshakes.
type recordingCredentials struct {
	credentials.TransportCredentials
	connector *connector
}

func (r recordingCredentials) ClientHandshake(ctx context.Context, authority string, conn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	c, info, err := r.TransportCredentials.ClientHandshake(ctx, authority, conn)
	if err != nil {
		r.connector.record(fmt.Errorf("TLS handshake: %w", err))
	}
	return c, info, err
}

func (r recordingCredentials) Clone() credentials.TransportCredentials {
	return recordingCredentials{TransportCredentials: r.TransportCredentials.Clone(), connector: r.connector}
}

// insecureCredentials verify nothing about the server and present no
// certificate. They are only for fetching the cluster CA.
func insecureCredentials() (credentials.TransportCredentials, error) {
	config, err := rpc.ClientTLSConfig(nil, rpc.WantInsecure())
	if err != nil {
		return nil, err
	}
	return credentials.NewTLS(config), nil
}

// FetchCA asks the endpoints in turn for the cluster CA certificate and
// returns the first answer with the endpoint that gave it. The connections
// verify nothing, so the CA must be verified before it is trusted; TrustedCA
// does that.
func (c *Cluster) FetchCA(ctx context.Context) (*x509.Certificate, string, error) {
	endpoints, err := parseEndpoints(c.Endpoints)
	if err != nil {
		return nil, "", err
	}
	conn, err := c.connector()
	if err != nil {
		return nil, "", err
	}
	return c.fetchCA(ctx, endpoints, conn)
}

func (c *Cluster) fetchCA(ctx context.Context, endpoints []resolver.NodeEndpoint, conn *connector) (*x509.Certificate, string, error) {
	creds, err := insecureCredentials()
	if err != nil {
		return nil, "", err
	}
	var errs []error
	for _, ep := range endpoints {
		ca, err := c.fetchCAFrom(ctx, ep.String(), creds, conn)
		if err == nil {
			return ca, ep.String(), nil
		}
		if ctx.Err() != nil {
			return nil, "", err
		}
		errs = append(errs, fmt.Errorf("%s: %w", ep, err))
	}
	return nil, "", fmt.Errorf("fetching the cluster CA: %w", errors.Join(errs...))
}

func (c *Cluster) fetchCAFrom(ctx context.Context, endpoint string, creds credentials.TransportCredentials, conn *connector) (*x509.Certificate, error) {
	ctx, cancel := context.WithTimeout(ctx, c.connectTimeout())
	defer cancel()
	cc, err := grpc.NewClient("passthrough:///"+endpoint,
		grpc.WithTransportCredentials(creds),
		grpc.WithContextDialer(conn.dialContext),
	)
	if err != nil {
		return nil, err
	}
	defer cc.Close()
	res, err := ipb.NewCuratorLocalClient(cc).GetCACertificate(ctx, &ipb.GetCACertificateRequest{})
	if err != nil {
		return nil, err
	}
	ca, err := x509.ParseCertificate(res.IdentityCaCertificate)
	if err != nil {
		return nil, fmt.Errorf("parsing the CA certificate it sent: %w", err)
	}
	if !ca.IsCA {
		return nil, errors.New("the CA certificate it sent is not a CA certificate")
	}
	return ca, nil
}

// LeaderConn is a connection to the curator leader. It follows the leader
// when it moves to another node.
type LeaderConn struct {
	*grpc.ClientConn
	resolver *resolver.Resolver
}

// Close closes the connection.
func (c *LeaderConn) Close() error {
	err := c.ClientConn.Close()
	c.resolver.Close()
	return err
}

// DialLeader connects to the curator leader, authenticating with creds,
// which must verify servers against the cluster CA ca. Calls wait up to the
// connect timeout for the leader to be reachable; calls that cannot reach it
// because the endpoints present another CA fail early with a
// *CAMismatchError, and calls that time out fail with an error wrapping
// ErrUnreachable that says why.
func (c *Cluster) DialLeader(creds credentials.TransportCredentials, ca *x509.Certificate) (*LeaderConn, error) {
	endpoints, err := parseEndpoints(c.Endpoints)
	if err != nil {
		return nil, err
	}
	conn, err := c.connector()
	if err != nil {
		return nil, err
	}
	opts := []resolver.Option{resolver.WithoutCuratorUpdater()}
	if c.Logger != nil {
		opts = append(opts, resolver.WithLogger(c.Logger))
	}
	r := resolver.New(context.Background(), opts...)
	for _, ep := range endpoints {
		r.AddEndpoint(ep)
	}
	g := &callGuard{cluster: c, endpoints: endpoints, ca: ca, connector: conn}
	cc, err := grpc.NewClient(resolver.Scheme+":///control",
		grpc.WithTransportCredentials(recordingCredentials{TransportCredentials: creds, connector: conn}),
		grpc.WithContextDialer(conn.dialContext),
		grpc.WithResolvers(r),
		// Calls made while the leader moves wait for the new one rather
		// than fail; callGuard bounds the wait for the first connection.
		grpc.WithDefaultCallOptions(grpc.WaitForReady(true)),
		rpc.ClientKeepalive(),
		grpc.WithChainUnaryInterceptor(g.unary),
		grpc.WithChainStreamInterceptor(g.stream),
	)
	if err != nil {
		r.Close()
		return nil, err
	}
	return &LeaderConn{ClientConn: cc, resolver: r}, nil
}

// DialNode connects to the NodeManagement service of the node with ID id at
// address (host, without port), authenticating with cert and accepting only
// that node of the cluster with CA ca. Calls fail as soon as the node cannot
// be reached.
func (c *Cluster) DialNode(cert tls.Certificate, ca *x509.Certificate, id, address string) (*grpc.ClientConn, error) {
	if address == "" {
		return nil, fmt.Errorf("node %s has not reported an address", id)
	}
	conn, err := c.connector()
	if err != nil {
		return nil, err
	}
	creds := rpc.NewAuthenticatedCredentials(cert, rpc.WantRemoteCluster(ca), rpc.WantRemoteNode(id))
	return grpc.NewClient("passthrough:///"+net.JoinHostPort(address, strconv.Itoa(node.NodeManagementPort)),
		grpc.WithTransportCredentials(creds),
		grpc.WithContextDialer(conn.dialContext),
		rpc.ClientKeepalive(),
	)
}

// callGuard makes calls on a leader connection wait until the leader is
// reachable, for a bounded time, and explains why it is not.
type callGuard struct {
	cluster   *Cluster
	endpoints []resolver.NodeEndpoint
	ca        *x509.Certificate
	connector *connector
}

func (g *callGuard) unary(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	if err := g.waitReady(ctx, cc); err != nil {
		return err
	}
	return invoker(ctx, method, req, reply, cc, opts...)
}

func (g *callGuard) stream(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	if err := g.waitReady(ctx, cc); err != nil {
		return nil, err
	}
	return streamer(ctx, desc, cc, method, opts...)
}

// waitReady waits until cc is connected to the leader, for at most the
// connect timeout. gRPC alone would fail calls as soon as the first endpoint
// fails, even while others may still answer, and only with the error of the
// last attempt.
func (g *callGuard) waitReady(ctx context.Context, cc *grpc.ClientConn) error {
	if cc.GetState() == connectivity.Ready {
		return nil
	}
	cc.Connect()
	timeout := g.cluster.connectTimeout()
	deadline, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	notifyAt := time.Now().Add(slowConnectNotice)
	notified, probed := false, false
	for {
		state := cc.GetState()
		switch state {
		case connectivity.Ready:
			return nil
		case connectivity.TransientFailure:
			// The usual reason for never finding the leader is talking to
			// another cluster; asking an endpoint for its CA tells.
			if !probed {
				probed = true
				if err := g.probe(deadline); err != nil {
					return err
				}
			}
		}
		wait, cancelWait := deadline, context.CancelFunc(func() {})
		if !notified {
			wait, cancelWait = context.WithDeadline(deadline, notifyAt)
		}
		changed := cc.WaitForStateChange(wait, state)
		cancelWait()
		switch {
		case changed:
		case ctx.Err() != nil:
			return status.FromContextError(ctx.Err()).Err()
		case deadline.Err() != nil:
			return g.unreachable(timeout)
		default:
			notified = true
			g.cluster.progressf("Waiting for the curator leader (through %s)...", g.endpointList())
		}
	}
}

// probe returns a *CAMismatchError if the first endpoint that answers
// presents a CA other than the trusted one, and nil otherwise.
func (g *callGuard) probe(ctx context.Context) error {
	ca, endpoint, err := g.cluster.fetchCA(ctx, g.endpoints, g.connector)
	if err != nil || ca.Equal(g.ca) {
		return nil
	}
	return &CAMismatchError{Endpoint: endpoint, Trusted: g.ca, Presented: ca}
}

func (g *callGuard) endpointList() string {
	names := make([]string, len(g.endpoints))
	for i, ep := range g.endpoints {
		names[i] = ep.String()
	}
	return strings.Join(names, ", ")
}

func (g *callGuard) unreachable(timeout time.Duration) error {
	err := fmt.Errorf("%w: no curator leader reachable through %s within %s", ErrUnreachable, g.endpointList(), timeout)
	if last := g.connector.last(); last != nil {
		err = fmt.Errorf("%w (last connection error: %w)", err, last)
	}
	return err
}
