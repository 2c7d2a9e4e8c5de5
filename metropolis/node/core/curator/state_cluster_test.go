package curator

import (
	"strings"
	"testing"

	cpb "metropolis.dev/metropolis/proto/common"
)

func TestNodeTPMUsage(t *testing.T) {
	for _, tc := range []struct {
		mode    cpb.ClusterConfiguration_TPMMode
		haveTPM bool
		want    cpb.NodeTPMUsage
		wantErr bool
	}{
		{cpb.ClusterConfiguration_TPM_MODE_REQUIRED, true, cpb.NodeTPMUsage_NODE_TPM_USAGE_PRESENT_AND_USED, false},
		{cpb.ClusterConfiguration_TPM_MODE_REQUIRED, false, 0, true},
		{cpb.ClusterConfiguration_TPM_MODE_BEST_EFFORT, true, cpb.NodeTPMUsage_NODE_TPM_USAGE_PRESENT_AND_USED, false},
		{cpb.ClusterConfiguration_TPM_MODE_BEST_EFFORT, false, cpb.NodeTPMUsage_NODE_TPM_USAGE_NOT_PRESENT, false},
		{cpb.ClusterConfiguration_TPM_MODE_DISABLED, true, cpb.NodeTPMUsage_NODE_TPM_USAGE_PRESENT_BUT_UNUSED, false},
		{cpb.ClusterConfiguration_TPM_MODE_DISABLED, false, cpb.NodeTPMUsage_NODE_TPM_USAGE_NOT_PRESENT, false},
		{cpb.ClusterConfiguration_TPM_MODE_INVALID, true, 0, true},
	} {
		got, err := NodeTPMUsage(&cpb.ClusterConfiguration{TpmMode: tc.mode}, tc.haveTPM)
		if (err != nil) != tc.wantErr {
			t.Errorf("NodeTPMUsage(%s, %v) error = %v, want error %v", tc.mode, tc.haveTPM, err, tc.wantErr)
		}
		if err == nil && got != tc.want {
			t.Errorf("NodeTPMUsage(%s, %v) = %s, want %s", tc.mode, tc.haveTPM, got, tc.want)
		}
	}
}

func TestNodeStoragePolicy(t *testing.T) {
	const (
		insecure = cpb.NodeStorageSecurity_NODE_STORAGE_SECURITY_INSECURE
		enc      = cpb.NodeStorageSecurity_NODE_STORAGE_SECURITY_ENCRYPTED
		authEnc  = cpb.NodeStorageSecurity_NODE_STORAGE_SECURITY_AUTHENTICATED_ENCRYPTED
	)
	for _, tc := range []struct {
		policy      cpb.ClusterConfiguration_StorageSecurityPolicy
		recommended cpb.NodeStorageSecurity
		allowed     []cpb.NodeStorageSecurity
	}{
		{cpb.ClusterConfiguration_STORAGE_SECURITY_POLICY_PERMISSIVE, authEnc, []cpb.NodeStorageSecurity{insecure, enc, authEnc}},
		{cpb.ClusterConfiguration_STORAGE_SECURITY_POLICY_NEEDS_ENCRYPTION, enc, []cpb.NodeStorageSecurity{enc, authEnc}},
		{cpb.ClusterConfiguration_STORAGE_SECURITY_POLICY_NEEDS_ENCRYPTION_AND_AUTHENTICATION, authEnc, []cpb.NodeStorageSecurity{authEnc}},
		{cpb.ClusterConfiguration_STORAGE_SECURITY_POLICY_NEEDS_INSECURE, insecure, []cpb.NodeStorageSecurity{insecure}},
	} {
		cfg := &cpb.ClusterConfiguration{StorageSecurityPolicy: tc.policy}
		got, err := NodeStorageSecurity(cfg)
		if err != nil || got != tc.recommended {
			t.Errorf("NodeStorageSecurity(%s) = %s, %v, want %s", tc.policy, got, err, tc.recommended)
		}
		// The recommendation must itself be allowed.
		if err := ValidateNodeStorage(cfg, got); err != nil {
			t.Errorf("recommendation %s refused by %s: %v", got, tc.policy, err)
		}
		for _, ss := range []cpb.NodeStorageSecurity{0, insecure, enc, authEnc, 42} {
			allowed := false
			for _, a := range tc.allowed {
				allowed = allowed || a == ss
			}
			if err := ValidateNodeStorage(cfg, ss); (err == nil) != allowed {
				t.Errorf("ValidateNodeStorage(%s, %s) = %v, want allowed=%v", tc.policy, ss, err, allowed)
			}
		}
	}
	if _, err := NodeStorageSecurity(&cpb.ClusterConfiguration{}); err == nil {
		t.Errorf("NodeStorageSecurity of an invalid policy succeeded")
	}
}

func TestValidateClusterConfiguration(t *testing.T) {
	if err := ValidateClusterConfiguration(DefaultClusterConfiguration()); err != nil {
		t.Fatalf("default configuration invalid: %v", err)
	}
	if got := withDefaults(nil); got.ClusterDomain != "cluster.internal" ||
		got.TpmMode != cpb.ClusterConfiguration_TPM_MODE_REQUIRED ||
		got.StorageSecurityPolicy != cpb.ClusterConfiguration_STORAGE_SECURITY_POLICY_NEEDS_ENCRYPTION_AND_AUTHENTICATION {
		t.Errorf("withDefaults(nil) = %v", got)
	}
	partial := &cpb.ClusterConfiguration{TpmMode: cpb.ClusterConfiguration_TPM_MODE_DISABLED}
	if got := withDefaults(partial); got.TpmMode != cpb.ClusterConfiguration_TPM_MODE_DISABLED || got.ClusterDomain != "cluster.internal" {
		t.Errorf("withDefaults(%v) = %v", partial, got)
	}

	for name, mutate := range map[string]func(*cpb.ClusterConfiguration){
		"bad domain":       func(c *cpb.ClusterConfiguration) { c.ClusterDomain = "Bad_Domain" },
		"no domain":        func(c *cpb.ClusterConfiguration) { c.ClusterDomain = "" },
		"invalid TPM mode": func(c *cpb.ClusterConfiguration) { c.TpmMode = 0 },
		"unknown TPM mode": func(c *cpb.ClusterConfiguration) { c.TpmMode = 17 },
		"unknown storage":  func(c *cpb.ClusterConfiguration) { c.StorageSecurityPolicy = 9 },
		"bad regexp":       func(c *cpb.ClusterConfiguration) { c.Kubernetes = labelRules("(") },
		"empty regexp":     func(c *cpb.ClusterConfiguration) { c.Kubernetes = labelRules("") },
		"huge regexp":      func(c *cpb.ClusterConfiguration) { c.Kubernetes = labelRules(strings.Repeat("a", 2000)) },
		"too many regexps": func(c *cpb.ClusterConfiguration) { c.Kubernetes = labelRules(make([]string, 200)...) },
		"nil label sync rule": func(c *cpb.ClusterConfiguration) {
			c.Kubernetes = &cpb.ClusterConfiguration_Kubernetes{NodeLabelsToSynchronize: []*cpb.ClusterConfiguration_Kubernetes_NodeLabelsToSynchronize{nil}}
		},
	} {
		c := DefaultClusterConfiguration()
		mutate(c)
		if err := ValidateClusterConfiguration(c); err == nil {
			t.Errorf("%s: configuration %v accepted", name, c)
		}
	}
}
