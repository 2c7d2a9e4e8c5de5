package curator

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
	"google.golang.org/protobuf/proto"

	"metropolis.dev/metropolis/node/core/consensus"
	ppb "metropolis.dev/metropolis/node/core/curator/proto/private"
	"metropolis.dev/metropolis/node/core/identity"
	"metropolis.dev/osbase/event"
	"metropolis.dev/osbase/event/memory"
	"metropolis.dev/osbase/supervisor"
)

// Config configures a curator.
type Config struct {
	// NodeCredentials of the node the curator runs on. The curator serves
	// with them and trusts their cluster CA.
	NodeCredentials *identity.NodeCredentials
	// Consensus is the local consensus member; the curator runs while it
	// runs.
	Consensus event.Watchable[*consensus.Status]
	// LeaderTTL is how long a leader that stops renewing its leadership
	// keeps it, and thus how long the cluster may go without a leader after
	// a curator dies. Zero means 10 seconds; it is rounded up to whole
	// seconds.
	LeaderTTL time.Duration
	// ListenHost is the address the curator's gRPC server listens on, at
	// node.CuratorServicePort. Empty means every address.
	ListenHost string
}

// defaultLeaderTTL is the LeaderTTL used when Config leaves it unset.
const defaultLeaderTTL = 10 * time.Second

// electionPrefix is where curators elect their leader.
const electionPrefix = "/leader"

// Service is a curator. See the package documentation.
type Service struct {
	config Config
	pki    *curatorPKI
	// election says whether this curator leads, and if not, who does.
	election memory.Value[*electionStatus]
	// crl is the cluster CA's current revocation list.
	crl atomic.Pointer[x509.RevocationList]
}

// electionStatus is this curator's view of the election.
type electionStatus struct {
	// leader is set while this curator is the leader.
	leader *leadership
	// otherLeader is the election value of the leader while another
	// curator leads. Both are nil while no leader is known.
	otherLeader *ppb.LeaderElectionValue
}

// New returns a curator for config. Nothing happens until Run.
func New(config Config) *Service {
	if config.LeaderTTL <= 0 {
		config.LeaderTTL = defaultLeaderTTL
	}
	return &Service{config: config, pki: newCuratorPKI()}
}

// Run is the curator's supervisor runnable. It waits for the local consensus
// member, then takes part in the leader election and serves the curator's
// APIs until ctx is done or the consensus member stops.
func (s *Service) Run(ctx context.Context) error {
	w := s.config.Consensus.Watch()
	defer w.Close()
	st, err := w.Get(ctx, consensus.FilterRunning)
	if err != nil {
		return fmt.Errorf("waiting for consensus: %w", err)
	}
	cl := st.CuratorClient()
	// The configuration is the last thing bootstrap writes; without it
	// there is no cluster to serve, and the CA must not be created here.
	if _, err := clusterConfigurationLoad(ctx, cl); err != nil {
		return fmt.Errorf("cluster is not bootstrapped: %w", err)
	}
	s.election.Set(&electionStatus{})
	if err := supervisor.Run(ctx, "listener", func(ctx context.Context) error { return s.runListener(ctx, cl) }); err != nil {
		return err
	}
	if err := supervisor.Run(ctx, "election", func(ctx context.Context) error { return s.runElection(ctx, st) }); err != nil {
		return err
	}
	supervisor.Signal(ctx, supervisor.SignalHealthy)
	if _, err := w.Get(ctx, event.Filter(func(st *consensus.Status) bool { return !st.Running() })); err != nil {
		return err
	}
	return errors.New("consensus stopped")
}

// runElection campaigns for leadership and, once leader, runs the leader's
// background work until leadership is lost. It then returns an error, so
// that the supervisor makes it campaign again.
func (s *Service) runElection(ctx context.Context, st *consensus.Status) error {
	cl := st.CuratorClient()
	ttl := int64((s.config.LeaderTTL + time.Second - 1) / time.Second)
	nodeID := s.config.NodeCredentials.ID()

	lease, err := cl.Grant(ctx, ttl)
	if err != nil {
		return fmt.Errorf("creating election lease: %w", err)
	}
	// The session outlives ctx, so that closing it still revokes the lease
	// and the next leader is elected at once rather than after the TTL.
	sessionCtx, cancelSession := context.WithCancel(context.Background())
	defer cancelSession()
	session, err := concurrency.NewSession(cl, concurrency.WithLease(lease.ID), concurrency.WithTTL(int(ttl)), concurrency.WithContext(sessionCtx))
	if err != nil {
		return fmt.Errorf("creating election session: %w", err)
	}
	defer func() {
		s.election.Set(&electionStatus{})
		session.Close()
	}()
	if err := s.removeStaleLocks(ctx, cl, nodeID, session.Lease()); err != nil {
		return err
	}

	value, err := proto.Marshal(&ppb.LeaderElectionValue{NodeId: nodeID, Ttl: uint64(ttl)})
	if err != nil {
		return fmt.Errorf("encoding election value: %w", err)
	}
	election := concurrency.NewElection(session, electionPrefix)

	var mu sync.Mutex
	leading := false
	observeCtx, stopObserving := context.WithCancel(ctx)
	var observing sync.WaitGroup
	observing.Add(1)
	go func() {
		defer observing.Done()
		for res := range election.Observe(observeCtx) {
			var v ppb.LeaderElectionValue
			if len(res.Kvs) == 0 || proto.Unmarshal(res.Kvs[0].Value, &v) != nil || v.NodeId == nodeID {
				continue
			}
			mu.Lock()
			if !leading {
				s.election.Set(&electionStatus{otherLeader: &v})
			}
			mu.Unlock()
		}
	}()
	defer func() {
		stopObserving()
		observing.Wait()
	}()

	if err := election.Campaign(ctx, string(value)); err != nil {
		return fmt.Errorf("campaigning: %w", err)
	}
	l := &leadership{
		nodeID:      nodeID,
		lockKey:     election.Key(),
		lockRev:     election.Rev(),
		since:       time.Now(),
		etcd:        cl,
		consensus:   st,
		credentials: s.config.NodeCredentials,
		pki:         s.pki,
		nodes:       newNodeCache(cl),
	}
	mu.Lock()
	leading = true
	s.election.Set(&electionStatus{leader: l})
	mu.Unlock()
	supervisor.Logger(ctx).Infof("Curator became leader.")

	if err := supervisor.Run(ctx, "nodes", l.nodes.run); err != nil {
		return err
	}
	if err := supervisor.Run(ctx, "consensus-sync", l.syncConsensus); err != nil {
		return err
	}
	supervisor.Signal(ctx, supervisor.SignalHealthy)
	select {
	case <-session.Done():
		return errors.New("lost leadership: election session expired")
	case <-ctx.Done():
		return ctx.Err()
	}
}

// removeStaleLocks deletes election keys of this node from earlier
// sessions, which would otherwise make it wait for its own ghost until the
// old lease expires.
func (s *Service) removeStaleLocks(ctx context.Context, cl *clientv3.Client, nodeID string, current clientv3.LeaseID) error {
	res, err := cl.Get(ctx, electionPrefix+"/", clientv3.WithPrefix())
	if err != nil {
		return fmt.Errorf("listing election keys: %w", err)
	}
	for _, kv := range res.Kvs {
		var v ppb.LeaderElectionValue
		if proto.Unmarshal(kv.Value, &v) != nil || v.NodeId != nodeID || clientv3.LeaseID(kv.Lease) == current {
			continue
		}
		supervisor.Logger(ctx).Infof("Removing stale election key %s of this node.", strings.TrimPrefix(string(kv.Key), electionPrefix+"/"))
		if _, err := cl.Delete(ctx, string(kv.Key)); err != nil {
			return fmt.Errorf("removing stale election key: %w", err)
		}
	}
	return nil
}
