package core

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"metropolis.dev/metropolis/node"
	apb "metropolis.dev/metropolis/proto/api"
	cpb "metropolis.dev/metropolis/proto/common"
)

// TPMModes are the names of the cluster TPM modes, as given on command lines.
var TPMModes = map[string]cpb.ClusterConfiguration_TPMMode{
	"required":    cpb.ClusterConfiguration_TPM_MODE_REQUIRED,
	"best-effort": cpb.ClusterConfiguration_TPM_MODE_BEST_EFFORT,
	"disabled":    cpb.ClusterConfiguration_TPM_MODE_DISABLED,
}

// StorageSecurityPolicies are the names of the cluster storage security
// policies, as given on command lines.
var StorageSecurityPolicies = map[string]cpb.ClusterConfiguration_StorageSecurityPolicy{
	"permissive":                          cpb.ClusterConfiguration_STORAGE_SECURITY_POLICY_PERMISSIVE,
	"needs-encryption":                    cpb.ClusterConfiguration_STORAGE_SECURITY_POLICY_NEEDS_ENCRYPTION,
	"needs-encryption-and-authentication": cpb.ClusterConfiguration_STORAGE_SECURITY_POLICY_NEEDS_ENCRYPTION_AND_AUTHENTICATION,
	"needs-insecure":                      cpb.ClusterConfiguration_STORAGE_SECURITY_POLICY_NEEDS_INSECURE,
}

// Bootstrap is what a new cluster is bootstrapped with.
type Bootstrap struct {
	// OwnerKey is the public key of the cluster's owner.
	OwnerKey ed25519.PublicKey
	// Domain is the cluster's DNS domain.
	Domain string
	// TPMMode and StorageSecurity are names from TPMModes and
	// StorageSecurityPolicies.
	TPMMode         string
	StorageSecurity string
	// Labels of the bootstrap node, as key=value.
	Labels []string
}

// BootstrapParameters returns the parameters of the first node of a new
// cluster.
func BootstrapParameters(b Bootstrap) (*apb.NodeParameters, error) {
	if len(b.OwnerKey) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("owner key is %d bytes, want %d", len(b.OwnerKey), ed25519.PublicKeySize)
	}
	if err := node.ValidateClusterDomain(b.Domain); err != nil {
		return nil, fmt.Errorf("cluster domain: %w", err)
	}
	tpm, ok := TPMModes[b.TPMMode]
	if !ok {
		return nil, fmt.Errorf("unknown TPM mode %q; modes are %s", b.TPMMode, names(TPMModes))
	}
	storage, ok := StorageSecurityPolicies[b.StorageSecurity]
	if !ok {
		return nil, fmt.Errorf("unknown storage security policy %q; policies are %s", b.StorageSecurity, names(StorageSecurityPolicies))
	}
	labels, err := ParseLabels(b.Labels)
	if err != nil {
		return nil, err
	}
	return &apb.NodeParameters{
		Cluster: &apb.NodeParameters_ClusterBootstrap_{ClusterBootstrap: &apb.NodeParameters_ClusterBootstrap{
			OwnerPublicKey: b.OwnerKey,
			InitialClusterConfiguration: &cpb.ClusterConfiguration{
				ClusterDomain:         b.Domain,
				TpmMode:               tpm,
				StorageSecurityPolicy: storage,
			},
			Labels: labels,
		}},
	}, nil
}

// RegisterParameters returns the parameters of a node that registers into
// the cluster mgmt talks to, with the given labels (key=value).
func RegisterParameters(ctx context.Context, mgmt apb.ManagementClient, labels []string) (*apb.NodeParameters, error) {
	nodeLabels, err := ParseLabels(labels)
	if err != nil {
		return nil, err
	}
	ticket, err := mgmt.GetRegisterTicket(ctx, &apb.GetRegisterTicketRequest{})
	if err != nil {
		return nil, fmt.Errorf("getting register ticket: %w", err)
	}
	info, err := mgmt.GetClusterInfo(ctx, &apb.GetClusterInfoRequest{})
	if err != nil {
		return nil, fmt.Errorf("getting cluster info: %w", err)
	}
	if len(info.ClusterDirectory.GetNodes()) == 0 {
		return nil, errors.New("the cluster lists no node with an address to register through")
	}
	return &apb.NodeParameters{
		Cluster: &apb.NodeParameters_ClusterRegister_{ClusterRegister: &apb.NodeParameters_ClusterRegister{
			RegisterTicket:   ticket.Ticket,
			ClusterDirectory: info.ClusterDirectory,
			CaCertificate:    info.CaCertificate,
			Labels:           nodeLabels,
		}},
	}, nil
}

// names returns the sorted keys of m, for messages.
func names[V any](m map[string]V) string {
	return strings.Join(slices.Sorted(maps.Keys(m)), ", ")
}
