package qemu

import (
	"bytes"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/google/go-tpm/legacy/tpm2"
)

// TestManufactureTPM manufactures a TPM with the real swtpm, then starts
// it again from its state, as a VM would, and reads which PCR banks are
// allocated.
func TestManufactureTPM(t *testing.T) {
	swtpm, err := exec.LookPath("swtpm")
	if err != nil {
		t.Fatalf("swtpm (Debian package swtpm): %v", err)
	}
	dir := t.TempDir()
	sock := filepath.Join(t.TempDir(), "m.sock")
	if err := manufactureTPM(t.Context(), swtpm, dir, sock); err != nil {
		t.Fatalf("manufacturing: %v", err)
	}
	state, err := os.ReadFile(filepath.Join(dir, tpmStateFile))
	if err != nil {
		t.Fatalf("no state after manufacturing: %v", err)
	}

	// The check below can fail: swtpm's own defaults allocate more banks.
	if fresh := pcrBanks(t, swtpm, t.TempDir()); fresh[tpm2.AlgSHA1] == 0 || fresh[tpm2.AlgSHA384] == 0 {
		t.Errorf("a TPM that was not manufactured has banks %v, expected SHA-1 and SHA-384 among them", fresh)
	}
	got := pcrBanks(t, swtpm, dir)
	want := map[tpm2.Algorithm]int{tpm2.AlgSHA1: 0, tpm2.AlgSHA256: 24, tpm2.AlgSHA384: 0, tpm2.AlgSHA512: 0}
	for alg, n := range want {
		if got[alg] != n {
			t.Errorf("bank %v has %d PCRs, want %d (all banks: %v)", alg, got[alg], n, got)
		}
	}

	// A TPM that exists is the machine's own: it is never manufactured
	// again, which would change its seeds.
	if err := os.WriteFile(filepath.Join(dir, tpmStateFile), state, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := manufactureTPM(t.Context(), swtpm, dir, sock); err != nil {
		t.Fatalf("manufacturing again: %v", err)
	}
	if again, err := os.ReadFile(filepath.Join(dir, tpmStateFile)); err != nil || !bytes.Equal(again, state) {
		t.Errorf("an existing TPM state was changed (err %v)", err)
	}
}

// pcrBanks starts swtpm on the state in dir and returns how many PCRs
// each bank has allocated.
func pcrBanks(t *testing.T, swtpm, dir string) map[tpm2.Algorithm]int {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "q.sock")
	var out bytes.Buffer
	cmd, err := startCommandTPM(t.Context(), swtpm, dir, sock, &out)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := cmd.Wait(); err != nil {
			t.Errorf("swtpm: %v: %s", err, out.String())
		}
	}()
	conn, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	caps, _, err := tpm2.GetCapability(conn, tpm2.CapabilityPCRs, 16, 0)
	if err != nil {
		t.Fatalf("reading the PCR allocation: %v", err)
	}
	banks := make(map[tpm2.Algorithm]int)
	for _, c := range caps {
		sel, ok := c.(tpm2.PCRSelection)
		if !ok {
			t.Fatalf("PCR capability has a %T", c)
		}
		banks[sel.Hash] = len(sel.PCRs)
	}
	return banks
}
