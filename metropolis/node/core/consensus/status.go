package consensus

import (
	"context"
	"crypto/ed25519"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/namespace"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

// The key prefixes of the namespaced clients.
const (
	curatorPrefix    = "namespaced:curator/"
	kubernetesPrefix = "namespaced:kubernetes/"
)

var (
	// ErrQuorumAtRisk is returned by AddNode and RemoveNode when etcd refuses
	// the membership change because the cluster could lose its quorum: not
	// enough members would be left, or some members are not connected (or
	// have been connected for less than five seconds). Retrying later is
	// safe.
	ErrQuorumAtRisk = errors.New("membership change refused: the cluster could lose its quorum")
	// ErrNotMember is returned by RemoveNode for a node that is not a
	// member.
	ErrNotMember = errors.New("node is not a consensus member")
	// ErrAlreadyMember is returned by AddNode for a node that is already a
	// member with another address or key.
	ErrAlreadyMember = errors.New("node is already a consensus member")
)

// Status is the state of the local member, and a handle to the cluster
// through it. Only a running Status has clients and manages membership; once
// the member stops, they fail.
type Status struct {
	// running is false for the Status set once etcd stopped; all other
	// fields are unset then.
	running bool

	port int
	etcd *embed.Etcd
	// cl is the client of the whole key space, for the consensus service
	// itself only.
	cl         *clientv3.Client
	curator    *clientv3.Client
	kubernetes *clientv3.Client
	pki        *peerPKI
	// ca is the peer CA certificate.
	ca *x509.Certificate
}

func newStatus(ctx context.Context, config *Config, e *embed.Etcd, socket string, logger *zap.Logger) (*Status, error) {
	cl, err := localClient(socket, logger)
	if err != nil {
		return nil, err
	}
	st := &Status{
		running:    true,
		port:       config.port(),
		etcd:       e,
		cl:         cl,
		curator:    namespacedClient(cl, curatorPrefix),
		kubernetes: namespacedClient(cl, kubernetesPrefix),
		pki:        newPeerPKI(),
	}
	der, err := st.pki.ca.Ensure(ctx, cl)
	if err == nil {
		st.ca, err = x509.ParseCertificate(der)
	}
	if err != nil {
		st.close()
		return nil, fmt.Errorf("loading peer CA: %w", err)
	}
	return st, nil
}

func (s *Status) close() {
	s.curator.Close()
	s.kubernetes.Close()
	s.cl.Close()
}

// namespacedClient returns a client that sees only the keys below prefix,
// with the prefix removed. It has its own watcher and lease client, so that
// closing it does not affect cl. Cluster, Maintenance and Auth are not set:
// they act on the whole cluster, not on a namespace.
func namespacedClient(cl *clientv3.Client, prefix string) *clientv3.Client {
	ns := clientv3.NewCtxClient(cl.Ctx(), clientv3.WithZapLogger(cl.GetLogger()))
	ns.KV = namespace.NewKV(cl.KV, prefix)
	ns.Watcher = namespace.NewWatcher(clientv3.NewWatcher(cl), prefix)
	ns.Lease = namespace.NewLease(clientv3.NewLease(cl), prefix)
	return ns
}

// Running reports whether the member is running. A nil Status is not.
func (s *Status) Running() bool {
	return s != nil && s.running
}

// CuratorClient returns the client of the curator's namespace,
// "namespaced:curator/". KV, Watcher and Lease work within the namespace, so
// it can be used for elections and sessions (go.etcd.io/etcd/client/v3/concurrency);
// Cluster, Maintenance and Auth are nil. It stops working when the member
// stops, and must not be closed.
func (s *Status) CuratorClient() *clientv3.Client {
	return s.curator
}

// KubernetesClient is like CuratorClient, for "namespaced:kubernetes/".
func (s *Status) KubernetesClient() *clientv3.Client {
	return s.kubernetes
}

// Member is a member of the cluster.
type Member struct {
	// NodeID is the member's node. It is empty only for members that were
	// not added through AddNode and have not started yet.
	NodeID string
	// Learner is set for members that have not been promoted to voting
	// members yet.
	Learner bool
	// PeerURLs are the URLs under which the member is reached by others.
	PeerURLs []string
}

// errNotRunning is returned by the methods of a Status that is not running.
var errNotRunning = errors.New("consensus member is not running")

// Members returns the members of the cluster, sorted by node ID.
func (s *Status) Members(ctx context.Context) ([]Member, error) {
	if !s.Running() {
		return nil, errNotRunning
	}
	res, err := s.cl.MemberList(ctx)
	if err != nil {
		return nil, fmt.Errorf("listing members: %w", err)
	}
	names, err := memberNames(ctx, s.cl)
	if err != nil {
		return nil, err
	}
	members := make([]Member, 0, len(res.Members))
	for _, m := range res.Members {
		id := m.Name
		if name, ok := names[m.ID]; ok {
			id = name
		}
		members = append(members, Member{NodeID: id, Learner: m.IsLearner, PeerURLs: m.PeerURLs})
	}
	slices.SortFunc(members, func(a, b Member) int { return strings.Compare(a.NodeID, b.NodeID) })
	return members, nil
}

// AddNode adds the node nodeID, whose key is pub, as a learner reachable at
// https://peerHost:port, with the port of the local member, and issues its
// peer certificate. peerHost must be an IP address. The returned JoinCluster
// lets the node join; the autopromoter promotes it once it has caught up.
//
// Adding a node that is already a member at the same address with the same
// key returns a JoinCluster again, so that a caller can retry after losing
// the result. Adding it with another address or key fails with
// ErrAlreadyMember.
func (s *Status) AddNode(ctx context.Context, nodeID string, pub ed25519.PublicKey, peerHost string) (*JoinCluster, error) {
	if !s.Running() {
		return nil, errNotRunning
	}
	if err := validateNodeID(nodeID); err != nil {
		return nil, err
	}
	if len(pub) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("public key of %s has %d bytes, want %d", nodeID, len(pub), ed25519.PublicKeySize)
	}
	ip := net.ParseIP(peerHost)
	if ip == nil {
		return nil, fmt.Errorf("peer host %q of %s is not an IP address", peerHost, nodeID)
	}
	peerURL := (&url.URL{Scheme: "https", Host: net.JoinHostPort(peerHost, strconv.Itoa(s.port))}).String()

	cert, err := s.existingMember(ctx, nodeID, pub, peerURL)
	if err != nil {
		return nil, fmt.Errorf("adding %s: %w", nodeID, err)
	}
	if cert == nil {
		if cert, err = s.addLearner(ctx, nodeID, pub, ip, peerURL); err != nil {
			return nil, fmt.Errorf("adding %s: %w", nodeID, err)
		}
	}
	join, err := s.joinCluster(ctx, cert, nodeID)
	if err != nil {
		return nil, fmt.Errorf("adding %s: %w", nodeID, err)
	}
	return join, nil
}

// existingMember returns the peer certificate of nodeID if it is already a
// member at peerURL with key pub, or nil if it is not a member. A record of
// an earlier membership that has ended is retired on the way.
func (s *Status) existingMember(ctx context.Context, nodeID string, pub ed25519.PublicKey, peerURL string) (*x509.Certificate, error) {
	// Listing members only returns what the local member knows, but after
	// this linearizable read it knows every membership change committed
	// before.
	rec, err := readMemberRecord(ctx, s.cl, nodeID)
	if err != nil {
		return nil, err
	}
	list, err := s.cl.MemberList(ctx)
	if err != nil {
		return nil, fmt.Errorf("listing members: %w", err)
	}
	for _, m := range list.Members {
		switch {
		case rec != nil && m.ID == rec.MemberID:
			if !slices.Equal(m.PeerURLs, []string{peerURL}) || !pub.Equal(rec.PublicKey) {
				return nil, fmt.Errorf("%w with peer URLs %v and another key or address", ErrAlreadyMember, m.PeerURLs)
			}
			der, err := s.pki.peerCertificate(nodeID, rec.MemberID, rec.PublicKey, nil).Ensure(ctx, s.cl)
			if err != nil {
				return nil, fmt.Errorf("loading peer certificate: %w", err)
			}
			return x509.ParseCertificate(der)
		case m.Name == nodeID:
			return nil, fmt.Errorf("%w as etcd member %x, which has no membership record", ErrAlreadyMember, m.ID)
		}
	}
	if rec != nil {
		if err := s.pki.retire(ctx, s.cl, nodeID, rec); err != nil {
			return nil, fmt.Errorf("retiring earlier membership as etcd member %x: %w", rec.MemberID, err)
		}
	}
	return nil, nil
}

func (s *Status) addLearner(ctx context.Context, nodeID string, pub ed25519.PublicKey, ip net.IP, peerURL string) (*x509.Certificate, error) {
	res, err := s.cl.MemberAddAsLearner(ctx, []string{peerURL})
	if err != nil {
		return nil, fmt.Errorf("adding learner at %s: %w", peerURL, membershipError(err))
	}
	cert, err := s.pki.issue(ctx, s.cl, nodeID, res.Member.ID, pub, ip)
	if err != nil {
		// Without a certificate and record, the learner could neither join
		// nor be found again by node ID.
		if _, rerr := s.cl.MemberRemove(ctx, res.Member.ID); rerr != nil {
			return nil, fmt.Errorf("%w (and removing the learner %x again failed: %w)", err, res.Member.ID, rerr)
		}
		return nil, err
	}
	return cert, nil
}

func (s *Status) joinCluster(ctx context.Context, cert *x509.Certificate, nodeID string) (*JoinCluster, error) {
	crl, err := s.pki.ca.CRL(ctx, s.cl)
	if err != nil {
		return nil, err
	}
	members, err := s.Members(ctx)
	if err != nil {
		return nil, err
	}
	join := &JoinCluster{
		CACertificate:   s.ca,
		NodeCertificate: cert,
		InitialCRL:      crl.Raw,
	}
	for _, m := range members {
		if m.NodeID == nodeID {
			continue
		}
		for _, u := range m.PeerURLs {
			join.ExistingNodes = append(join.ExistingNodes, ExistingNode{Name: m.NodeID, URL: u})
		}
	}
	return join, nil
}

// RemoveNode removes the node nodeID from the cluster and revokes its peer
// certificate. etcd refuses to remove a voting member if that could cost the
// cluster its quorum, which is returned as ErrQuorumAtRisk. Removing a node
// that is not a member fails with ErrNotMember.
//
// If the node was removed but revoking its certificate failed, as it does
// when a member removes itself, an error is returned; calling RemoveNode
// again (on any member) finishes the job.
func (s *Status) RemoveNode(ctx context.Context, nodeID string) error {
	if !s.Running() {
		return errNotRunning
	}
	if err := s.removeNode(ctx, nodeID); err != nil {
		return fmt.Errorf("removing %s: %w", nodeID, err)
	}
	return nil
}

func (s *Status) removeNode(ctx context.Context, nodeID string) error {
	// As in existingMember, this read makes the member list up to date.
	rec, err := readMemberRecord(ctx, s.cl, nodeID)
	if err != nil {
		return err
	}
	list, err := s.cl.MemberList(ctx)
	if err != nil {
		return fmt.Errorf("listing members: %w", err)
	}
	var member *uint64
	for _, m := range list.Members {
		if (rec != nil && m.ID == rec.MemberID) || m.Name == nodeID {
			member = &m.ID
			break
		}
	}
	if member == nil && rec == nil {
		return ErrNotMember
	}
	if member != nil {
		_, err := s.cl.MemberRemove(ctx, *member)
		if err != nil && !errors.Is(err, rpctypes.ErrMemberNotFound) {
			return membershipError(err)
		}
	}
	if rec == nil {
		return nil
	}
	if err := s.pki.retire(ctx, s.cl, nodeID, rec); err != nil {
		return fmt.Errorf("removed from etcd, but retiring its peer certificate failed: %w", err)
	}
	return nil
}

// membershipError marks etcd's refusals to change membership for lack of
// quorum as ErrQuorumAtRisk.
func membershipError(err error) error {
	if errors.Is(err, rpctypes.ErrUnhealthy) || errors.Is(err, rpctypes.ErrMemberNotEnoughStarted) {
		return fmt.Errorf("%w: %w", ErrQuorumAtRisk, err)
	}
	return err
}
