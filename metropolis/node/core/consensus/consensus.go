package consensus

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.etcd.io/etcd/server/v3/etcdserver"
	"go.etcd.io/etcd/server/v3/wal"
	"go.uber.org/zap"

	"metropolis.dev/osbase/event"
	"metropolis.dev/osbase/event/memory"
	"metropolis.dev/osbase/supervisor"
)

// Service runs the node's etcd member.
type Service struct {
	config Config
	value  memory.Value[*Status]
}

// New returns a Service for config. Nothing happens until Run.
func New(config Config) *Service {
	return &Service{config: config}
}

// Value is the state of the local member: a running Status while it serves
// as a voting member, and a Status that is not running once it has stopped
// (and its data may be used again). It has no value before the member first
// ran. A new member runs only once it has been promoted from learner.
func (s *Service) Value() event.Value[*Status] {
	return &s.value
}

// FilterRunning makes a Get on the Value of a Service wait until the local
// member is running.
var FilterRunning = event.Filter(func(s *Status) bool { return s.Running() })

// Run is a supervisor runnable that runs the local etcd member: it
// bootstraps a new cluster, joins an existing one or restarts the member
// from DataDir, serves until ctx is canceled, and returns an error if etcd
// stops on its own, so that the supervisor restarts it.
func (s *Service) Run(ctx context.Context) error {
	if err := s.config.validate(); err != nil {
		return fmt.Errorf("invalid consensus configuration: %w", err)
	}
	f := s.config.files()
	for _, dir := range []string{s.config.DataDir, f.etcd, s.config.EphemeralDir} {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("creating directory: %w", err)
		}
	}
	etcdLogger := newZapLogger(supervisor.MustSubLogger(ctx, "etcd"))
	joining, err := s.prepare(ctx, &f, etcdLogger)
	if err != nil {
		return err
	}
	cfg := s.config.etcdConfig(f, etcdLogger, true)
	if joining {
		if err := s.joinConfig(ctx, cfg, &f, etcdLogger); err != nil {
			return err
		}
	}

	e, err := startEtcd(ctx, cfg)
	if err != nil {
		return err
	}
	if err := waitPromoted(ctx, e); err != nil {
		e.Close()
		return err
	}
	st, err := newStatus(ctx, &s.config, e, f.socket, newZapLogger(supervisor.MustSubLogger(ctx, "client")))
	if err != nil {
		e.Close()
		return err
	}
	defer func() {
		st.close()
		e.Close()
		// Only now, so that whoever sees this may start the member again.
		s.value.Set(&Status{})
	}()
	if err := supervisor.Run(ctx, "crl", func(ctx context.Context) error { return syncCRL(ctx, st, &f) }); err != nil {
		return err
	}
	if err := supervisor.Run(ctx, "autopromoter", st.autopromote); err != nil {
		return err
	}
	supervisor.Logger(ctx).Infof("Consensus member %s (etcd member %x) is running.", s.config.NodeID, uint64(e.Server.ID()))
	s.value.Set(st)
	supervisor.Signal(ctx, supervisor.SignalHealthy)

	select {
	case <-ctx.Done():
		return ctx.Err()
	case err := <-e.Err():
		return fmt.Errorf("etcd failed: %w", err)
	case <-e.Server.StopNotify():
		if e.Server.IsIDRemoved(uint64(e.Server.ID())) {
			return errors.New("etcd stopped: this member was removed from the cluster")
		}
		return errors.New("etcd stopped unexpectedly")
	}
}

// prepare makes sure that etcd data or JoinCluster and the peer credentials
// are there, bootstrapping a new cluster if there is neither data nor
// JoinCluster. It reports whether the member has yet to join its cluster.
func (s *Service) prepare(ctx context.Context, f *files, logger *zap.Logger) (joining bool, err error) {
	l := supervisor.Logger(ctx)
	haveData := wal.Exist(f.wal())
	haveCredentials, err := f.havePeerFiles()
	if err != nil {
		return false, fmt.Errorf("checking peer credentials: %w", err)
	}
	j := s.config.JoinCluster
	switch {
	case haveData && haveCredentials:
		l.Infof("Starting the member from its data.")
		return false, nil
	case j != nil && !haveData && len(j.ExistingNodes) == 0:
		// A member restarting from its data needs no peers to join
		// through: the bootstrapping member's role never names any.
		return false, errors.New("JoinCluster has no ExistingNodes to join")
	case j != nil:
		// Without data, the member has never joined, so the credentials of
		// this JoinCluster are the ones that count, even if an earlier
		// attempt to join left others behind. With data, they are the same
		// as the member joined with.
		l.Infof("Joining the cluster as a learner.")
		if err := f.writePeerFiles(j.CACertificate, j.NodeCertificate, s.config.NodePrivateKey, j.InitialCRL); err != nil {
			return false, fmt.Errorf("writing peer credentials of JoinCluster: %w", err)
		}
		return !haveData, nil
	case haveData:
		// Data without credentials can only come from a bootstrap that was
		// interrupted; setting them up again is idempotent.
		l.Infof("Resuming an interrupted bootstrap of a new cluster.")
	default:
		l.Infof("Bootstrapping a new cluster.")
	}
	return false, s.bootstrap(ctx, f, logger)
}

// bootstrap starts a new single-member cluster and sets up its peer PKI. The
// PKI lives in etcd, so etcd has to run before its peer credentials exist:
// it first runs without listening for peers, which a single member does not
// need anyway, and is restarted with them by Run.
func (s *Service) bootstrap(ctx context.Context, f *files, logger *zap.Logger) error {
	cfg := s.config.etcdConfig(*f, logger, false)
	cfg.ClusterState = embed.ClusterStateFlagNew
	cfg.InitialCluster = fmt.Sprintf("%s=%s", cfg.Name, s.config.peerURL().String())
	e, err := startEtcd(ctx, cfg)
	if err != nil {
		return fmt.Errorf("bootstrapping: %w", err)
	}
	defer e.Close()
	cl, err := localClient(f.socket, logger)
	if err != nil {
		return fmt.Errorf("bootstrapping: %w", err)
	}
	defer cl.Close()

	p := newPeerPKI()
	caDER, err := p.ca.Ensure(ctx, cl)
	if err != nil {
		return fmt.Errorf("bootstrapping: creating peer CA: %w", err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return fmt.Errorf("bootstrapping: parsing peer CA: %w", err)
	}
	cert, err := p.issue(ctx, cl, s.config.NodeID, uint64(e.Server.ID()), s.config.publicKey(), net.ParseIP(s.config.ListenHost))
	if err != nil {
		return fmt.Errorf("bootstrapping: %w", err)
	}
	crl, err := p.ca.CRL(ctx, cl)
	if err != nil {
		return fmt.Errorf("bootstrapping: %w", err)
	}
	if err := f.writePeerFiles(ca, cert, s.config.NodePrivateKey, crl.Raw); err != nil {
		return fmt.Errorf("bootstrapping: writing peer credentials: %w", err)
	}
	return nil
}

// joinConfig makes cfg join the cluster of JoinCluster. etcd requires a
// joining member to know the current membership exactly, and the members
// known when the node was added may have changed since, so it asks them.
func (s *Service) joinConfig(ctx context.Context, cfg *embed.Config, f *files, logger *zap.Logger) error {
	j := s.config.JoinCluster
	urls := make([]string, 0, len(j.ExistingNodes))
	for _, n := range j.ExistingNodes {
		urls = append(urls, n.URL)
	}
	cert, err := tls.LoadX509KeyPair(f.peerCert, f.peerKey)
	if err != nil {
		return fmt.Errorf("loading peer credentials: %w", err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(j.CACertificate)
	transport := &http.Transport{
		TLSClientConfig: &tls.Config{
			Certificates: []tls.Certificate{cert},
			RootCAs:      roots,
			MinVersion:   tls.VersionTLS13,
		},
	}
	defer transport.CloseIdleConnections()
	cluster, err := etcdserver.GetClusterFromRemotePeers(logger, urls, transport)
	if err != nil {
		return fmt.Errorf("asking existing members %s for the cluster's membership: %w", strings.Join(urls, ", "), err)
	}

	self := s.config.peerURL().String()
	var initial []string
	found := false
	for _, m := range cluster.Members() {
		name := m.Name
		if len(m.PeerURLs) == 1 && m.PeerURLs[0] == self {
			name, found = cfg.Name, true
		} else if name == "" {
			// Members that have not started yet have no name, but etcd
			// only needs distinct names to tell them apart.
			name = m.ID.String()
		}
		for _, u := range m.PeerURLs {
			initial = append(initial, name+"="+u)
		}
	}
	if !found {
		return fmt.Errorf("the cluster has no member with peer URL %s: the node was removed, or added with another address", self)
	}
	cfg.ClusterState = embed.ClusterStateFlagExisting
	cfg.InitialCluster = strings.Join(initial, ",")
	supervisor.Logger(ctx).Infof("Joining the cluster: %s", cfg.InitialCluster)
	return nil
}

// readyTimeout bounds how long etcd may take to become ready after it was
// started. Joining a cluster includes catching up with its data.
const readyTimeout = 2 * time.Minute

// startEtcd starts etcd and waits until it serves clients.
func startEtcd(ctx context.Context, cfg *embed.Config) (*embed.Etcd, error) {
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return nil, fmt.Errorf("starting etcd: %w", err)
	}
	timeout := time.NewTimer(readyTimeout)
	defer timeout.Stop()
	select {
	case <-e.Server.ReadyNotify():
		return e, nil
	case err := <-e.Err():
		err = fmt.Errorf("etcd failed while starting: %w", err)
		e.Close()
		return nil, err
	case <-e.Server.StopNotify():
		e.Close()
		return nil, errors.New("etcd stopped while starting")
	case <-timeout.C:
		e.Close()
		return nil, fmt.Errorf("etcd not ready after %v", readyTimeout)
	case <-ctx.Done():
		e.Close()
		return nil, ctx.Err()
	}
}

// promotionPollInterval is how often a learner checks whether it has been
// promoted. etcd offers no notification for that, but checking is cheap.
const promotionPollInterval = 250 * time.Millisecond

// waitPromoted waits until the member is a voting member. Learners do not
// serve clients: they exist to catch up with the cluster's data before they
// can vote, which is what the autopromoter of the leader waits for. Until
// then, the member checks peers against the CRL it joined with.
func waitPromoted(ctx context.Context, e *embed.Etcd) error {
	if !e.Server.IsLearner() {
		return nil
	}
	supervisor.Logger(ctx).Infof("Waiting to be promoted from learner to voting member.")
	t := time.NewTicker(promotionPollInterval)
	defer t.Stop()
	for e.Server.IsLearner() {
		select {
		case <-t.C:
		case err := <-e.Err():
			return fmt.Errorf("etcd failed while waiting for promotion: %w", err)
		case <-e.Server.StopNotify():
			return errors.New("etcd stopped while waiting for promotion")
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// localClient connects to etcd's client socket.
func localClient(socket string, logger *zap.Logger) (*clientv3.Client, error) {
	cl, err := clientv3.New(clientv3.Config{
		Endpoints:   []string{"unix://" + socket},
		DialTimeout: 10 * time.Second,
		Logger:      logger,
	})
	if err != nil {
		return nil, fmt.Errorf("connecting to etcd: %w", err)
	}
	return cl, nil
}

// syncCRL keeps the CRL file that etcd checks peers against up to date with
// the CRL in etcd.
func syncCRL(ctx context.Context, st *Status, f *files) error {
	w := st.pki.ca.WatchCRL(st.cl)
	defer w.Close()
	supervisor.Signal(ctx, supervisor.SignalHealthy)
	for {
		crl, err := w.Get(ctx)
		if err != nil {
			return err
		}
		if err := f.writeCRL(crl.Raw); err != nil {
			return fmt.Errorf("writing CRL: %w", err)
		}
		supervisor.Logger(ctx).V(1).Infof("Peer CRL %v with %d revoked certificates written.", crl.Number, len(crl.RevokedCertificateEntries))
	}
}
