package curator

import (
	"context"
	"errors"
	"fmt"
	"regexp"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/protobuf/proto"

	"metropolis.dev/metropolis/node"
	cpb "metropolis.dev/metropolis/proto/common"
)

// clusterConfigurationKey holds the cluster's ClusterConfiguration.
const clusterConfigurationKey = "/cluster/configuration"

// defaultClusterDomain is used when a configuration names no domain.
const defaultClusterDomain = "cluster.internal"

// Limits on the parts of a ClusterConfiguration that operators choose
// freely, so that the configuration stays small and cheap to evaluate.
const (
	maxLabelSyncRules      = 128
	maxLabelSyncRuleLength = 1024
)

// DefaultClusterConfiguration returns the configuration of a cluster
// bootstrapped without one: the strictest TPM and storage policies.
func DefaultClusterConfiguration() *cpb.ClusterConfiguration {
	return &cpb.ClusterConfiguration{
		ClusterDomain:         defaultClusterDomain,
		TpmMode:               cpb.ClusterConfiguration_TPM_MODE_REQUIRED,
		StorageSecurityPolicy: cpb.ClusterConfiguration_STORAGE_SECURITY_POLICY_NEEDS_ENCRYPTION_AND_AUTHENTICATION,
	}
}

// withDefaults returns a copy of cfg in which every unset field has its
// default value. A nil cfg yields the default configuration.
func withDefaults(cfg *cpb.ClusterConfiguration) *cpb.ClusterConfiguration {
	def := DefaultClusterConfiguration()
	if cfg == nil {
		return def
	}
	res := proto.Clone(cfg).(*cpb.ClusterConfiguration)
	if res.ClusterDomain == "" {
		res.ClusterDomain = def.ClusterDomain
	}
	if res.TpmMode == cpb.ClusterConfiguration_TPM_MODE_INVALID {
		res.TpmMode = def.TpmMode
	}
	if res.StorageSecurityPolicy == cpb.ClusterConfiguration_STORAGE_SECURITY_POLICY_INVALID {
		res.StorageSecurityPolicy = def.StorageSecurityPolicy
	}
	return res
}

// ValidateClusterConfiguration checks a complete cluster configuration.
func ValidateClusterConfiguration(cfg *cpb.ClusterConfiguration) error {
	if cfg == nil {
		return errors.New("cluster configuration missing")
	}
	if err := node.ValidateClusterDomain(cfg.ClusterDomain); err != nil {
		return err
	}
	if _, ok := cpb.ClusterConfiguration_TPMMode_name[int32(cfg.TpmMode)]; !ok || cfg.TpmMode == cpb.ClusterConfiguration_TPM_MODE_INVALID {
		return fmt.Errorf("invalid TPM mode %d", cfg.TpmMode)
	}
	if _, ok := cpb.ClusterConfiguration_StorageSecurityPolicy_name[int32(cfg.StorageSecurityPolicy)]; !ok || cfg.StorageSecurityPolicy == cpb.ClusterConfiguration_STORAGE_SECURITY_POLICY_INVALID {
		return fmt.Errorf("invalid storage security policy %d", cfg.StorageSecurityPolicy)
	}
	return validateKubernetesConfiguration(cfg.Kubernetes)
}

func validateKubernetesConfiguration(k *cpb.ClusterConfiguration_Kubernetes) error {
	rules := k.GetNodeLabelsToSynchronize()
	if len(rules) > maxLabelSyncRules {
		return fmt.Errorf("%d node label synchronization rules, at most %d are allowed", len(rules), maxLabelSyncRules)
	}
	for i, rule := range rules {
		if rule == nil || rule.Regexp == "" {
			return fmt.Errorf("node label synchronization rule %d: empty regexp", i)
		}
		if len(rule.Regexp) > maxLabelSyncRuleLength {
			return fmt.Errorf("node label synchronization rule %d: regexp longer than %d bytes", i, maxLabelSyncRuleLength)
		}
		if _, err := regexp.Compile(rule.Regexp); err != nil {
			return fmt.Errorf("node label synchronization rule %d: %w", i, err)
		}
	}
	return nil
}

// NodeTPMUsage decides whether a node uses its TPM, given whether it has one.
// A cluster requiring TPMs refuses nodes without one.
func NodeTPMUsage(cfg *cpb.ClusterConfiguration, haveTPM bool) (cpb.NodeTPMUsage, error) {
	switch cfg.GetTpmMode() {
	case cpb.ClusterConfiguration_TPM_MODE_REQUIRED:
		if !haveTPM {
			return cpb.NodeTPMUsage_NODE_TPM_USAGE_INVALID, errors.New("the cluster requires a TPM, but the node has none")
		}
		return cpb.NodeTPMUsage_NODE_TPM_USAGE_PRESENT_AND_USED, nil
	case cpb.ClusterConfiguration_TPM_MODE_BEST_EFFORT:
		if haveTPM {
			return cpb.NodeTPMUsage_NODE_TPM_USAGE_PRESENT_AND_USED, nil
		}
		return cpb.NodeTPMUsage_NODE_TPM_USAGE_NOT_PRESENT, nil
	case cpb.ClusterConfiguration_TPM_MODE_DISABLED:
		if haveTPM {
			return cpb.NodeTPMUsage_NODE_TPM_USAGE_PRESENT_BUT_UNUSED, nil
		}
		return cpb.NodeTPMUsage_NODE_TPM_USAGE_NOT_PRESENT, nil
	default:
		return cpb.NodeTPMUsage_NODE_TPM_USAGE_INVALID, fmt.Errorf("invalid TPM mode %d", cfg.GetTpmMode())
	}
}

// NodeStorageSecurity is the storage security the cluster recommends to new
// nodes: the strongest its policy allows.
func NodeStorageSecurity(cfg *cpb.ClusterConfiguration) (cpb.NodeStorageSecurity, error) {
	switch cfg.GetStorageSecurityPolicy() {
	case cpb.ClusterConfiguration_STORAGE_SECURITY_POLICY_PERMISSIVE,
		cpb.ClusterConfiguration_STORAGE_SECURITY_POLICY_NEEDS_ENCRYPTION_AND_AUTHENTICATION:
		return cpb.NodeStorageSecurity_NODE_STORAGE_SECURITY_AUTHENTICATED_ENCRYPTED, nil
	case cpb.ClusterConfiguration_STORAGE_SECURITY_POLICY_NEEDS_ENCRYPTION:
		return cpb.NodeStorageSecurity_NODE_STORAGE_SECURITY_ENCRYPTED, nil
	case cpb.ClusterConfiguration_STORAGE_SECURITY_POLICY_NEEDS_INSECURE:
		return cpb.NodeStorageSecurity_NODE_STORAGE_SECURITY_INSECURE, nil
	default:
		return cpb.NodeStorageSecurity_NODE_STORAGE_SECURITY_INVALID, fmt.Errorf("invalid storage security policy %d", cfg.GetStorageSecurityPolicy())
	}
}

// ValidateNodeStorage checks that a node's storage security satisfies the
// cluster's policy.
func ValidateNodeStorage(cfg *cpb.ClusterConfiguration, ss cpb.NodeStorageSecurity) error {
	var allowed []cpb.NodeStorageSecurity
	switch cfg.GetStorageSecurityPolicy() {
	case cpb.ClusterConfiguration_STORAGE_SECURITY_POLICY_PERMISSIVE:
		allowed = []cpb.NodeStorageSecurity{
			cpb.NodeStorageSecurity_NODE_STORAGE_SECURITY_INSECURE,
			cpb.NodeStorageSecurity_NODE_STORAGE_SECURITY_ENCRYPTED,
			cpb.NodeStorageSecurity_NODE_STORAGE_SECURITY_AUTHENTICATED_ENCRYPTED,
		}
	case cpb.ClusterConfiguration_STORAGE_SECURITY_POLICY_NEEDS_ENCRYPTION:
		allowed = []cpb.NodeStorageSecurity{
			cpb.NodeStorageSecurity_NODE_STORAGE_SECURITY_ENCRYPTED,
			cpb.NodeStorageSecurity_NODE_STORAGE_SECURITY_AUTHENTICATED_ENCRYPTED,
		}
	case cpb.ClusterConfiguration_STORAGE_SECURITY_POLICY_NEEDS_ENCRYPTION_AND_AUTHENTICATION:
		allowed = []cpb.NodeStorageSecurity{
			cpb.NodeStorageSecurity_NODE_STORAGE_SECURITY_AUTHENTICATED_ENCRYPTED,
		}
	case cpb.ClusterConfiguration_STORAGE_SECURITY_POLICY_NEEDS_INSECURE:
		allowed = []cpb.NodeStorageSecurity{
			cpb.NodeStorageSecurity_NODE_STORAGE_SECURITY_INSECURE,
		}
	default:
		return fmt.Errorf("invalid storage security policy %d", cfg.GetStorageSecurityPolicy())
	}
	for _, a := range allowed {
		if ss == a {
			return nil
		}
	}
	return fmt.Errorf("storage security %s is not allowed by cluster policy %s", ss, cfg.GetStorageSecurityPolicy())
}

// clusterConfigurationLoad reads the cluster configuration. Clusters store
// it at bootstrap, so its absence is an error.
func clusterConfigurationLoad(ctx context.Context, kv clientv3.KV) (*cpb.ClusterConfiguration, error) {
	res, err := kv.Get(ctx, clusterConfigurationKey)
	if err != nil {
		return nil, fmt.Errorf("reading cluster configuration: %w", err)
	}
	if len(res.Kvs) == 0 {
		return nil, errors.New("cluster configuration not found")
	}
	var cfg cpb.ClusterConfiguration
	if err := proto.Unmarshal(res.Kvs[0].Value, &cfg); err != nil {
		return nil, fmt.Errorf("decoding cluster configuration: %w", err)
	}
	// Stored configurations predating a field read back with its default.
	return withDefaults(&cfg), nil
}
