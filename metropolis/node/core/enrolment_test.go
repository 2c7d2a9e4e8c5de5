package main

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	cpb "metropolis.dev/metropolis/proto/common"
	"metropolis.dev/osbase/tpm"
)

func TestSecurityName(t *testing.T) {
	if got := securityName(cpb.NodeStorageSecurity_NODE_STORAGE_SECURITY_AUTHENTICATED_ENCRYPTED); got != "authenticated encrypted" {
		t.Errorf("got %q", got)
	}
}

func TestExplainEnrolmentError(t *testing.T) {
	for _, tc := range []struct {
		err       error
		want      string
		untouched bool
	}{
		{fmt.Errorf("unsealing the node's configuration: %w", tpm.ErrWrongTPM), "sealed by a different TPM", true},
		{fmt.Errorf("unsealing the node's configuration: %w", tpm.ErrPolicyMismatch), "Secure Boot state changed", true},
		{errors.New("the cluster refuses to let this node rejoin: rpc error"), "the cluster refuses to let this node rejoin", false},
	} {
		got := explainEnrolmentError(tc.err)
		if !strings.Contains(got, tc.want) || strings.HasSuffix(got, "the data partition was left untouched") != tc.untouched {
			t.Errorf("%v: got %q, want it to contain %q (saying the data was untouched: %v)", tc.err, got, tc.want, tc.untouched)
		}
	}
}
