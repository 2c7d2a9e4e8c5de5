package main

import (
	"fmt"
	"strings"
	"testing"

	"metropolis.dev/metropolis/proto/api"
	cpb "metropolis.dev/metropolis/proto/common"
	"metropolis.dev/osbase/tpm"
)

func bootstrapWith(cfg *cpb.ClusterConfiguration) *api.NodeParameters {
	return &api.NodeParameters{Cluster: &api.NodeParameters_ClusterBootstrap_{
		ClusterBootstrap: &api.NodeParameters_ClusterBootstrap{InitialClusterConfiguration: cfg},
	}}
}

func TestStoragePolicy(t *testing.T) {
	register := &api.NodeParameters{Cluster: &api.NodeParameters_ClusterRegister_{ClusterRegister: &api.NodeParameters_ClusterRegister{}}}
	for _, tc := range []struct {
		name     string
		params   *api.NodeParameters
		security cpb.NodeStorageSecurity
		tpm      cpb.ClusterConfiguration_TPMMode
	}{
		{"defaults", bootstrapWith(nil), cpb.NodeStorageSecurity_NODE_STORAGE_SECURITY_AUTHENTICATED_ENCRYPTED, cpb.ClusterConfiguration_TPM_MODE_BEST_EFFORT},
		{"insecure", bootstrapWith(&cpb.ClusterConfiguration{StorageSecurityPolicy: cpb.ClusterConfiguration_STORAGE_SECURITY_POLICY_NEEDS_INSECURE}),
			cpb.NodeStorageSecurity_NODE_STORAGE_SECURITY_INSECURE, cpb.ClusterConfiguration_TPM_MODE_BEST_EFFORT},
		{"encrypted", bootstrapWith(&cpb.ClusterConfiguration{StorageSecurityPolicy: cpb.ClusterConfiguration_STORAGE_SECURITY_POLICY_NEEDS_ENCRYPTION, TpmMode: cpb.ClusterConfiguration_TPM_MODE_REQUIRED}),
			cpb.NodeStorageSecurity_NODE_STORAGE_SECURITY_ENCRYPTED, cpb.ClusterConfiguration_TPM_MODE_REQUIRED},
		{"authenticated", bootstrapWith(&cpb.ClusterConfiguration{StorageSecurityPolicy: cpb.ClusterConfiguration_STORAGE_SECURITY_POLICY_NEEDS_ENCRYPTION_AND_AUTHENTICATION, TpmMode: cpb.ClusterConfiguration_TPM_MODE_DISABLED}),
			cpb.NodeStorageSecurity_NODE_STORAGE_SECURITY_AUTHENTICATED_ENCRYPTED, cpb.ClusterConfiguration_TPM_MODE_DISABLED},
		{"permissive", bootstrapWith(&cpb.ClusterConfiguration{StorageSecurityPolicy: cpb.ClusterConfiguration_STORAGE_SECURITY_POLICY_PERMISSIVE}),
			cpb.NodeStorageSecurity_NODE_STORAGE_SECURITY_AUTHENTICATED_ENCRYPTED, cpb.ClusterConfiguration_TPM_MODE_BEST_EFFORT},
		{"register", register, cpb.NodeStorageSecurity_NODE_STORAGE_SECURITY_AUTHENTICATED_ENCRYPTED, cpb.ClusterConfiguration_TPM_MODE_BEST_EFFORT},
	} {
		security, tpmMode := storagePolicy(tc.params)
		if security != tc.security || tpmMode != tc.tpm {
			t.Errorf("%s: got %v, %v, want %v, %v", tc.name, security, tpmMode, tc.security, tc.tpm)
		}
	}
}

func TestSecurityName(t *testing.T) {
	if got := securityName(cpb.NodeStorageSecurity_NODE_STORAGE_SECURITY_AUTHENTICATED_ENCRYPTED); got != "authenticated encrypted" {
		t.Errorf("got %q", got)
	}
}

func TestExplainUnsealError(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{fmt.Errorf("localstorage: unsealing: %w", tpm.ErrWrongTPM), "sealed by a different TPM"},
		{fmt.Errorf("localstorage: unsealing: %w", tpm.ErrPolicyMismatch), "Secure Boot state changed"},
		{fmt.Errorf("localstorage: unsealing: %w", tpm.ErrInvalidBlob), "cannot read the node's sealed configuration"},
	} {
		got := explainUnsealError(tc.err)
		if !strings.Contains(got, tc.want) || !strings.HasSuffix(got, "the data partition was left untouched") {
			t.Errorf("%v: got %q, want it to contain %q and say the data was not touched", tc.err, got, tc.want)
		}
	}
}
