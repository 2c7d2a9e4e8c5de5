// Package resolver lets gRPC clients reach the cluster's curator leader by
// the name metropolis:///control, wherever the leader currently runs.
//
// The curator is elected among the cluster's consensus members and may move
// to another node at any time. Every curator, leader or not, serves
// CuratorLocal.GetCurrentLeader, a stream that says where the leader is and
// speaks again whenever that changes. A Resolver is seeded with the
// addresses of some curators, follows that stream on each of them and points
// the gRPC ClientConn at the leader's address, so that clients keep working
// across leader changes without noticing them.
//
// Which report wins: a curator that reports itself as the leader is
// believed over one that reports somebody else, as it knows best; among
// equals the newest report wins. A report counts only as long as the stream
// it came on is open; the leader's stream ends when it loses leadership. When
// no curator answers at all, the ClientConn stays pointed at the last known
// leader, which is the best guess there is.
//
// With the curator updater (the default), the Resolver also learns curators:
// every leader it is told about is added to the curators it asks, so that
// the client keeps finding the leader after all the seeded curators are gone,
// as long as each new leader was reported while some known curator was still
// reachable. Curators it learned are asked until the Resolver is closed.
// Short-lived clients, such as a single metroctl command, have no use for
// that: they turn the updater off with WithoutCuratorUpdater and only ask
// the seeded curators, while still following the leader those report.
//
// The Resolver asks curators with the transport credentials of the
// ClientConn it resolves for, so it authenticates as whatever the client
// authenticates as.
package resolver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"strconv"
	"sync"

	"google.golang.org/grpc/resolver"

	"metropolis.dev/metropolis/node"
	"metropolis.dev/osbase/event/memory"
)

const (
	// Scheme is the URL scheme the Resolver resolves.
	Scheme = "metropolis"
	// controlEndpoint is the only name resolved: the curator leader, as in
	// metropolis:///control.
	controlEndpoint = "control"
)

// NodeEndpoint is where a node's curator can be reached.
type NodeEndpoint struct {
	// hostPort is host:port, as net.JoinHostPort makes it.
	hostPort string
}

// NodeByHostPort returns the endpoint at host and port.
func NodeByHostPort(host string, port int) NodeEndpoint {
	return NodeEndpoint{hostPort: net.JoinHostPort(host, strconv.Itoa(port))}
}

// NodeAtAddressWithDefaultPort returns the endpoint at host on the port
// curators serve on.
func NodeAtAddressWithDefaultPort(host string) NodeEndpoint {
	return NodeByHostPort(host, node.CuratorServicePort)
}

// String returns the endpoint as host:port.
func (e NodeEndpoint) String() string {
	return e.hostPort
}

// curators is what a Resolver knows about where curators are. Published
// values are never modified.
type curators struct {
	// endpoints to ask for the leader.
	endpoints map[NodeEndpoint]bool
	// overrides are where to reach some nodes instead of where they say
	// they are, keyed by node ID.
	overrides map[string]NodeEndpoint
}

// Resolver is a gRPC resolver.Builder for the Scheme "metropolis". It can
// serve any number of ClientConns, which all share its curators.
type Resolver struct {
	ctx            context.Context
	cancel         context.CancelFunc
	logger         *slog.Logger
	curatorUpdater bool

	// mu guards current, the curators last published through known.
	mu      sync.Mutex
	current curators
	known   memory.Value[curators]
}

// Option configures a Resolver.
type Option func(*Resolver)

// WithLogger makes the Resolver log leader changes and unreachable curators
// to l.
func WithLogger(l *slog.Logger) Option {
	return func(r *Resolver) { r.logger = l }
}

// WithoutCuratorUpdater makes the Resolver ask only the curators it was
// given, and never learn of others.
func WithoutCuratorUpdater() Option {
	return func(r *Resolver) { r.curatorUpdater = false }
}

// New returns a Resolver that works until ctx is done or Close is called.
// Seed it with AddEndpoint before or after dialing.
func New(ctx context.Context, opts ...Option) *Resolver {
	ctx, cancel := context.WithCancel(ctx)
	r := &Resolver{
		ctx:            ctx,
		cancel:         cancel,
		logger:         slog.New(slog.DiscardHandler),
		curatorUpdater: true,
	}
	for _, opt := range opts {
		opt(r)
	}
	r.current = curators{endpoints: map[NodeEndpoint]bool{}, overrides: map[string]NodeEndpoint{}}
	r.known.Set(r.current)
	return r
}

// AddEndpoint adds a curator to ask where the leader is.
func (r *Resolver) AddEndpoint(ep NodeEndpoint) {
	r.update(func(c *curators) bool {
		if c.endpoints[ep] {
			return false
		}
		c.endpoints[ep] = true
		return true
	})
}

// AddOverride makes the Resolver reach the node nodeID at ep whenever it is
// the leader, instead of at the address the cluster reports for it; for
// example the local node at 127.0.0.1.
func (r *Resolver) AddOverride(nodeID string, ep NodeEndpoint) {
	r.update(func(c *curators) bool {
		if c.overrides[nodeID] == ep {
			return false
		}
		c.overrides[nodeID] = ep
		return true
	})
}

// update publishes a copy of the current curators as changed by change,
// unless change reports that nothing changed.
func (r *Resolver) update(change func(*curators) bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	next := curators{endpoints: maps.Clone(r.current.endpoints), overrides: maps.Clone(r.current.overrides)}
	if change(&next) {
		r.current = next
		r.known.Set(next)
	}
}

// Close stops the Resolver and everything it resolves for. ClientConns
// using it keep their current leader address.
func (r *Resolver) Close() {
	r.cancel()
}

// Scheme returns "metropolis", for resolver.Builder.
func (r *Resolver) Scheme() string {
	return Scheme
}

// Build starts following the curator leader for cc, for resolver.Builder.
func (r *Resolver) Build(target resolver.Target, cc resolver.ClientConn, opts resolver.BuildOptions) (resolver.Resolver, error) {
	if ep := target.Endpoint(); ep != controlEndpoint {
		return nil, fmt.Errorf("metropolis resolver: unknown name %q, only %q is resolved", ep, controlEndpoint)
	}
	if opts.DialCreds == nil {
		return nil, errors.New("metropolis resolver: the ClientConn has no transport credentials to ask curators with")
	}
	if r.ctx.Err() != nil {
		return nil, errors.New("metropolis resolver: closed")
	}
	f := newFollower(r, cc, opts)
	return f, nil
}
