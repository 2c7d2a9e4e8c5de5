package roleserve

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"time"

	"metropolis.dev/metropolis/node/core/consensus"
	"metropolis.dev/metropolis/node/core/curator"
	"metropolis.dev/metropolis/node/core/identity"
	"metropolis.dev/metropolis/node/core/network"
	cpb "metropolis.dev/metropolis/proto/common"
	"metropolis.dev/osbase/event"
	"metropolis.dev/osbase/event/memory"
	"metropolis.dev/osbase/supervisor"
)

// leaderTTL is how long the cluster may go without a curator leader when
// the leader's node dies.
const leaderTTL = 10 * time.Second

// controlPlaneStartup is what the control plane starts with.
type controlPlaneStartup struct {
	// bootstrap is set if the node creates the cluster.
	bootstrap *BootstrapData
	// credentials and role are set if the node is a consensus member of
	// an existing cluster.
	credentials *identity.NodeCredentials
	role        *cpb.NodeRoles_ConsensusMember
}

// wanted says whether the control plane runs on this node.
func (c *controlPlaneStartup) wanted() bool {
	return c.bootstrap != nil || (c.role != nil && c.credentials != nil)
}

// runControlPlane runs the node's consensus member and curator while the
// node bootstraps the cluster or holds the ConsensusMember role. Its inputs
// are combined into a controlPlaneStartup by "reduce", and "launcher"
// starts from it. The launcher restarts only when the control plane is to
// be stopped: the rest of the role (the etcd peers to join
// through) only matters for a member that joins, and once it has joined,
// it starts from its data.
func (s *Service) runControlPlane(ctx context.Context) error {
	bootstrapC := make(chan *BootstrapData)
	rolesC := make(chan *cpb.NodeRoles)
	membershipC := make(chan *membership)
	var startup memory.Value[*controlPlaneStartup]
	err := supervisor.RunGroup(ctx, map[string]supervisor.Runnable{
		"map-bootstrap":  event.Pipe[*BootstrapData](&s.bootstrapData, bootstrapC),
		"map-roles":      event.Pipe[*cpb.NodeRoles](&s.LocalRoles, rolesC),
		"map-membership": event.Pipe[*membership](&s.membership, membershipC),
		"reduce": func(ctx context.Context) error {
			supervisor.Signal(ctx, supervisor.SignalHealthy)
			var c controlPlaneStartup
			startup.Set(&controlPlaneStartup{})
			for {
				select {
				case <-ctx.Done():
					return ctx.Err()
				case c.bootstrap = <-bootstrapC:
				case r := <-rolesC:
					c.role = r.GetConsensusMember()
				case m := <-membershipC:
					c.credentials = m.credentials
				}
				next := c
				startup.Set(&next)
			}
		},
		"launcher": func(ctx context.Context) error {
			return s.launchControlPlane(ctx, &startup)
		},
	})
	if err != nil {
		return err
	}
	supervisor.Signal(ctx, supervisor.SignalHealthy)
	<-ctx.Done()
	return ctx.Err()
}

// launchControlPlane starts consensus and curator if the startup wants
// them, and returns an error, to be restarted, once it wants the opposite.
func (s *Service) launchControlPlane(ctx context.Context, startups event.Watchable[*controlPlaneStartup]) error {
	w := startups.Watch()
	defer w.Close()
	st, err := w.Get(ctx)
	if err != nil {
		return err
	}
	if !st.wanted() {
		// Nothing runs yet, so nothing needs a restart once the control
		// plane is wanted: "reduce" publishes an empty startup before it
		// has read its inputs, and a restart would begin with that again.
		s.localControlPlane.Set(&localControlPlane{})
		supervisor.Signal(ctx, supervisor.SignalHealthy)
		if st, err = w.Get(ctx, event.Filter((*controlPlaneStartup).wanted)); err != nil {
			return err
		}
	}
	defer s.localControlPlane.Set(&localControlPlane{})

	host, err := s.controlPlaneHost(ctx)
	if err != nil {
		return err
	}
	cfg := consensus.Config{
		DataDir:      s.config.Storage.Data.Etcd.FullPath(),
		EphemeralDir: s.config.Storage.Ephemeral.Consensus.FullPath(),
		ListenHost:   host,
	}
	if st.bootstrap != nil {
		cfg.NodePrivateKey = st.bootstrap.NodeKey
		cfg.NodeID = identity.NodeID(st.bootstrap.NodeKey.Public().(ed25519.PublicKey))
		supervisor.Logger(ctx).Infof("Bootstrapping a new cluster: starting consensus on %s.", host)
	} else {
		cfg.NodePrivateKey = st.credentials.PrivateKey()
		cfg.NodeID = st.credentials.ID()
		if cfg.JoinCluster, err = curator.ConsensusJoinCluster(st.role); err != nil {
			return fmt.Errorf("ConsensusMember role: %w", err)
		}
		supervisor.Logger(ctx).Infof("Starting consensus on %s as a member of the cluster.", host)
	}
	cons := consensus.New(cfg)
	if err := supervisor.Run(ctx, "consensus", cons.Run); err != nil {
		return err
	}
	creds := st.credentials
	if st.bootstrap != nil {
		if creds, err = s.finishBootstrap(ctx, cons, st.bootstrap, host); err != nil {
			return err
		}
	}
	cur := curator.New(curator.Config{
		NodeCredentials: creds,
		Consensus:       cons.Value(),
		LeaderTTL:       leaderTTL,
		ListenHost:      s.config.ControlPlaneHost,
	})
	if err := supervisor.Run(ctx, "curator", cur.Run); err != nil {
		return err
	}
	s.localControlPlane.Set(&localControlPlane{running: true})
	supervisor.Signal(ctx, supervisor.SignalHealthy)
	if _, err := w.Get(ctx, event.Filter(func(c *controlPlaneStartup) bool { return !c.wanted() })); err != nil {
		return err
	}
	return errors.New("the node lost the ConsensusMember role: restarting to stop the control plane")
}

// controlPlaneHost is the address the consensus member listens on and
// advertises to its peers: ControlPlaneHost if set, otherwise the node's
// external address once it has one.
func (s *Service) controlPlaneHost(ctx context.Context) (string, error) {
	if s.config.ControlPlaneHost != "" {
		return s.config.ControlPlaneHost, nil
	}
	w := s.config.Network.Watch()
	defer w.Close()
	st, err := w.Get(ctx, event.Filter(func(st *network.Status) bool { return st != nil && st.ExternalAddress != nil }))
	if err != nil {
		return "", fmt.Errorf("waiting for an external address: %w", err)
	}
	return st.ExternalAddress.String(), nil
}

// finishBootstrap turns the freshly started consensus member of a new
// cluster into a cluster with this node as its first member, saves the
// node's credentials to the data partition and publishes its membership.
// Everything it does is idempotent, so a restart after a crash at any point
// completes the same bootstrap.
func (s *Service) finishBootstrap(ctx context.Context, cons *consensus.Service, b *BootstrapData, host string) (*identity.NodeCredentials, error) {
	w := cons.Value().Watch()
	defer w.Close()
	st, err := w.Get(ctx, consensus.FilterRunning)
	if err != nil {
		return nil, fmt.Errorf("waiting for consensus: %w", err)
	}
	pub := b.NodeKey.Public().(ed25519.PublicKey)
	id := identity.NodeID(pub)
	join, err := st.AddNode(ctx, id, pub, host)
	if err != nil {
		return nil, fmt.Errorf("bootstrapping: consensus membership of this node: %w", err)
	}
	res, err := curator.BootstrapNodeFinish(ctx, st.CuratorClient(), &curator.Bootstrap{
		NodePublicKey:    pub,
		JoinKey:          b.JoinKey,
		ClusterUnlockKey: b.ClusterUnlockKey,
		StorageSecurity:  b.StorageSecurity,
		TPMUsage:         b.TPMUsage,
		Labels:           b.Labels,
		Consensus:        join,
		OwnerPublicKey:   b.OwnerPublicKey,
		Configuration:    b.Configuration,
	})
	if err != nil {
		return nil, err
	}
	creds, err := identity.NewNodeCredentials(b.NodeKey, res.NodeCertificate, res.CACertificate)
	if err != nil {
		return nil, fmt.Errorf("bootstrapping: %w", err)
	}
	dir := &s.config.Storage.Data.Node.Credentials
	if err := dir.MkdirAll(0o700); err != nil {
		return nil, fmt.Errorf("bootstrapping: %w", err)
	}
	if err := creds.Save(dir.FullPath()); err != nil {
		return nil, fmt.Errorf("bootstrapping: %w", err)
	}
	supervisor.Logger(ctx).Infof("Bootstrapped the cluster as node %s.", id)
	s.membership.Set(&membership{credentials: creds})
	return creds, nil
}
