package curator

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/x509"
	"errors"
	"fmt"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/protobuf/proto"

	"metropolis.dev/metropolis/node/core/consensus"
	ipb "metropolis.dev/metropolis/node/core/curator/proto/api"
	ppb "metropolis.dev/metropolis/node/core/curator/proto/private"
	"metropolis.dev/metropolis/node/core/identity"
	cpb "metropolis.dev/metropolis/proto/common"
)

// Bootstrap describes a new cluster and its first node to
// BootstrapNodeFinish.
type Bootstrap struct {
	// NodePublicKey is the first node's key; its node certificate is issued
	// for it.
	NodePublicKey ed25519.PublicKey
	// JoinKey is the public key the node rejoins with after a reboot.
	JoinKey ed25519.PublicKey
	// ClusterUnlockKey is the cluster's half of the node's storage key,
	// empty for insecure storage.
	ClusterUnlockKey []byte
	// StorageSecurity of the node's data partition.
	StorageSecurity cpb.NodeStorageSecurity
	// TPMUsage of the node, as NodeTPMUsage decided it for Configuration.
	TPMUsage cpb.NodeTPMUsage
	// Labels of the node.
	Labels *cpb.NodeLabels
	// Consensus is the node's membership in the etcd cluster it
	// bootstrapped, as consensus.Status.AddNode returns it for the node
	// itself.
	Consensus *consensus.JoinCluster
	// OwnerPublicKey is the key of the cluster's initial owner.
	OwnerPublicKey ed25519.PublicKey
	// Configuration of the cluster. Unset fields take their defaults
	// (DefaultClusterConfiguration).
	Configuration *cpb.ClusterConfiguration
}

// BootstrapCredentials are what the first node needs to build its
// identity.NodeCredentials.
type BootstrapCredentials struct {
	// CACertificate is the new cluster CA (DER).
	CACertificate []byte
	// NodeCertificate is the node's certificate (DER).
	NodeCertificate []byte
}

var errAlreadyBootstrapped = errors.New("bootstrapping: the cluster was already bootstrapped by another node")

// BootstrapNodeFinish turns a freshly bootstrapped etcd into a cluster: it
// creates the cluster CA, issues the first node's certificate and stores the
// node (UP, with the ConsensusMember and KubernetesController roles), the
// initial owner and the cluster configuration. etcd must be the curator's
// namespaced client, and no curator may run yet.
//
// Calling it again for the same node, for example after a crash, returns the
// same credentials without changing anything.
func BootstrapNodeFinish(ctx context.Context, etcd *clientv3.Client, b *Bootstrap) (*BootstrapCredentials, error) {
	cfg := withDefaults(b.Configuration)
	if err := b.validate(cfg); err != nil {
		return nil, fmt.Errorf("bootstrapping: %w", err)
	}
	p := newCuratorPKI()
	id := identity.NodeID(b.NodePublicKey)
	existing, err := nodeLoad(ctx, etcd, id)
	switch {
	case err == nil:
		ca, err := p.caCertificate(ctx, etcd)
		if err != nil {
			return nil, fmt.Errorf("bootstrapping: loading cluster CA: %w", err)
		}
		return b.resume(existing, ca)
	case !errors.Is(err, errNodeNotFound):
		return nil, fmt.Errorf("bootstrapping: %w", err)
	}
	// Checked before anything is written, so that a bootstrap refused here
	// leaves no trace; the final transaction checks again.
	if _, err := clusterConfigurationLoad(ctx, etcd); err == nil {
		return nil, errAlreadyBootstrapped
	}
	ca, err := p.caCertificate(ctx, etcd)
	if err != nil {
		return nil, fmt.Errorf("bootstrapping: creating cluster CA: %w", err)
	}

	cert, err := p.issueNodeCertificate(ctx, etcd, b.NodePublicKey)
	if err != nil {
		return nil, fmt.Errorf("bootstrapping: issuing node certificate: %w", err)
	}
	n := &ppb.Node{
		PublicKey:        b.NodePublicKey,
		ClusterUnlockKey: b.ClusterUnlockKey,
		FsmState:         cpb.NodeState_NODE_STATE_UP,
		Roles: &cpb.NodeRoles{
			ConsensusMember:      consensusMemberRole(b.Consensus),
			KubernetesController: &cpb.NodeRoles_KubernetesController{},
		},
		JoinKey:            b.JoinKey,
		TpmUsage:           b.TPMUsage,
		Labels:             sortedLabels(b.Labels),
		StorageSecurity:    b.StorageSecurity,
		IssuedCertificates: [][]byte{cert},
	}
	ops, err := nodePutOps(n)
	if err != nil {
		return nil, fmt.Errorf("bootstrapping: %w", err)
	}
	owner, err := proto.Marshal(&ppb.InitialOwner{PublicKey: b.OwnerPublicKey})
	if err != nil {
		return nil, fmt.Errorf("bootstrapping: encoding owner: %w", err)
	}
	config, err := proto.Marshal(cfg)
	if err != nil {
		return nil, fmt.Errorf("bootstrapping: encoding configuration: %w", err)
	}
	ops = append(ops,
		clientv3.OpPut(initialOwnerKey, string(owner)),
		clientv3.OpPut(clusterConfigurationKey, string(config)),
	)
	// The configuration is written last of all bootstrap state and only
	// once, so its presence says that the cluster is bootstrapped.
	res, err := etcd.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(clusterConfigurationKey), "=", 0)).
		Then(ops...).
		Commit()
	if err != nil {
		return nil, fmt.Errorf("bootstrapping: storing cluster state: %w", err)
	}
	if !res.Succeeded {
		return nil, errAlreadyBootstrapped
	}
	return &BootstrapCredentials{CACertificate: ca, NodeCertificate: cert}, nil
}

// resume returns the credentials of a bootstrap that already happened, if
// it happened with the same parameters.
func (b *Bootstrap) resume(n *ppb.Node, ca []byte) (*BootstrapCredentials, error) {
	cert := latestNodeCertificate(n)
	if n.FsmState != cpb.NodeState_NODE_STATE_UP || cert == nil || !bytes.Equal(n.JoinKey, b.JoinKey) || !bytes.Equal(n.ClusterUnlockKey, b.ClusterUnlockKey) {
		return nil, errors.New("bootstrapping: the node already exists with other parameters")
	}
	return &BootstrapCredentials{CACertificate: ca, NodeCertificate: cert}, nil
}

func (b *Bootstrap) validate(cfg *cpb.ClusterConfiguration) error {
	if err := ValidateClusterConfiguration(cfg); err != nil {
		return fmt.Errorf("cluster configuration: %w", err)
	}
	for _, k := range []struct {
		name string
		key  []byte
	}{
		{"node public key", b.NodePublicKey},
		{"join key", b.JoinKey},
		{"owner public key", b.OwnerPublicKey},
	} {
		if err := validateKey(k.name, k.key); err != nil {
			return err
		}
	}
	if err := validateCommitNodeRequest(&ipb.CommitNodeRequest{ClusterUnlockKey: b.ClusterUnlockKey, StorageSecurity: b.StorageSecurity}); err != nil {
		return err
	}
	if err := ValidateNodeStorage(cfg, b.StorageSecurity); err != nil {
		return err
	}
	want, err := NodeTPMUsage(cfg, b.TPMUsage != cpb.NodeTPMUsage_NODE_TPM_USAGE_NOT_PRESENT)
	if err != nil {
		return err
	}
	if b.TPMUsage != want {
		return fmt.Errorf("TPM usage %s does not follow from TPM mode %s", b.TPMUsage, cfg.TpmMode)
	}
	if err := validateLabels(b.Labels); err != nil {
		return fmt.Errorf("labels: %w", err)
	}
	if b.Consensus == nil || b.Consensus.CACertificate == nil || b.Consensus.NodeCertificate == nil {
		return errors.New("consensus membership missing")
	}
	return nil
}

// consensusMemberRole is the ConsensusMember role of a node that joins (or
// is) the etcd cluster with join.
func consensusMemberRole(join *consensus.JoinCluster) *cpb.NodeRoles_ConsensusMember {
	role := &cpb.NodeRoles_ConsensusMember{
		CaCertificate:   join.CACertificate.Raw,
		PeerCertificate: join.NodeCertificate.Raw,
		InitialCrl:      join.InitialCRL,
	}
	for _, n := range join.ExistingNodes {
		role.Peers = append(role.Peers, &cpb.NodeRoles_ConsensusMember_Peer{Name: n.Name, Url: n.URL})
	}
	return role
}

// ConsensusJoinCluster returns what a node with the ConsensusMember role
// needs to start its etcd member.
func ConsensusJoinCluster(role *cpb.NodeRoles_ConsensusMember) (*consensus.JoinCluster, error) {
	if role == nil {
		return nil, errors.New("no ConsensusMember role")
	}
	ca, err := x509.ParseCertificate(role.CaCertificate)
	if err != nil {
		return nil, fmt.Errorf("parsing consensus CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(role.PeerCertificate)
	if err != nil {
		return nil, fmt.Errorf("parsing consensus peer certificate: %w", err)
	}
	join := &consensus.JoinCluster{CACertificate: ca, NodeCertificate: cert, InitialCRL: role.InitialCrl}
	for _, p := range role.Peers {
		join.ExistingNodes = append(join.ExistingNodes, consensus.ExistingNode{Name: p.Name, URL: p.Url})
	}
	return join, nil
}
