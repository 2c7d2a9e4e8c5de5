package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestTPMState(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tpm")
	if got := tpmState(dir); got != "none" {
		t.Errorf("missing class directory: got %q, want none", got)
	}
	if err := os.MkdirAll(filepath.Join(dir, "tpm0"), 0o755); err != nil {
		t.Fatal(err)
	}
	if got := tpmState(dir); got != "present (tpm0)" {
		t.Errorf("got %q, want present (tpm0)", got)
	}
	if err := os.WriteFile(filepath.Join(dir, "tpm0", "tpm_version_major"), []byte("2\n"), 0o444); err != nil {
		t.Fatal(err)
	}
	if got := tpmState(dir); got != "present (tpm0, TPM 2.0)" {
		t.Errorf("got %q, want present (tpm0, TPM 2.0)", got)
	}
}

func TestBanner(t *testing.T) {
	got := banner("v0.1.0-dev3.gabcdef01", bootFacts{Slot: "B", RootHash: "ab12", Device: "vda3", SecureBoot: "enabled", TPM: "none"})
	for _, want := range []string{
		"Metropolis node v0.1.0-dev3.gabcdef01\n",
		"slot:        B\n",
		"system:      vda3, dm-verity root hash ab12\n",
		"Secure Boot: enabled\n",
		"TPM:         none\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("banner %q lacks %q", got, want)
		}
	}
}
