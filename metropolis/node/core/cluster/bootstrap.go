package cluster

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"

	"google.golang.org/protobuf/proto"

	"metropolis.dev/metropolis/node/core/curator"
	"metropolis.dev/metropolis/node/core/identity"
	"metropolis.dev/metropolis/node/core/roleserve"
	apb "metropolis.dev/metropolis/proto/api"
	cpb "metropolis.dev/metropolis/proto/common"
	ppb "metropolis.dev/metropolis/proto/private"
	"metropolis.dev/osbase/supervisor"
)

// bootstrap makes this node the first node of a new cluster: it sets up the
// data partition as the cluster's configuration asks, creates the node's
// keys and hands them to the Role Server, whose control plane creates the
// cluster. Once the node has its credentials, the cluster CA is sealed into
// the configuration, for the node to verify the cluster when it rejoins.
func (m *Manager) bootstrap(ctx context.Context, p *apb.NodeParameters_ClusterBootstrap) error {
	log := supervisor.Logger(ctx)
	if len(p.OwnerPublicKey) != ed25519.PublicKeySize {
		return fmt.Errorf("node parameters: owner_public_key has %d bytes, want %d", len(p.OwnerPublicKey), ed25519.PublicKeySize)
	}
	cfg := curator.DefaultClusterConfiguration()
	if p.InitialClusterConfiguration != nil {
		// Unset fields keep their defaults.
		proto.Merge(cfg, p.InitialClusterConfiguration)
	}
	if err := curator.ValidateClusterConfiguration(cfg); err != nil {
		return fmt.Errorf("node parameters: initial cluster configuration: %w", err)
	}
	usage, err := curator.NodeTPMUsage(cfg, m.config.TPM != nil)
	if err != nil {
		return fmt.Errorf("bootstrapping: %w", err)
	}
	security, err := curator.NodeStorageSecurity(cfg)
	if err != nil {
		return fmt.Errorf("bootstrapping: %w", err)
	}
	t := m.sealingTPM(usage)

	log.Infof("Bootstrapping a new cluster: setting up the data partition (%s, TPM usage %s).", security, usage)
	cuk, err := m.config.Data.MountNew(ctx, security, t)
	if err != nil {
		return fmt.Errorf("setting up the data partition: %w", err)
	}
	nodePub, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return fmt.Errorf("generating node key: %w", err)
	}
	joinPub, joinKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return fmt.Errorf("generating join key: %w", err)
	}
	id := identity.NodeID(nodePub)
	if err := m.writeDirectory(&cpb.ClusterDirectory{Nodes: []*cpb.ClusterDirectory_Node{{
		Id:        id,
		Addresses: []*cpb.ClusterDirectory_Node_Address{{Host: "127.0.0.1"}},
	}}}); err != nil {
		return err
	}
	if err := m.reseal(t, func(sc *ppb.SealedConfiguration) { sc.JoinKey = joinKey }); err != nil {
		return err
	}

	rs := m.config.RoleServer
	rs.ProvideBootstrapData(&roleserve.BootstrapData{
		NodeKey:          key,
		JoinKey:          joinPub,
		ClusterUnlockKey: cuk,
		StorageSecurity:  security,
		TPMUsage:         usage,
		OwnerPublicKey:   p.OwnerPublicKey,
		Configuration:    cfg,
		Labels:           p.Labels,
	})
	log.Infof("Waiting for the control plane to create the cluster as node %s.", id)
	w := rs.CuratorConnection.Watch()
	defer w.Close()
	conn, err := w.Get(ctx)
	if err != nil {
		return fmt.Errorf("waiting for the cluster: %w", err)
	}
	if err := m.reseal(t, func(sc *ppb.SealedConfiguration) { sc.ClusterCa = conn.Credentials.ClusterCA().Raw }); err != nil {
		return err
	}
	return nil
}
