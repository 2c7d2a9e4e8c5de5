package main

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"metropolis.dev/osbase/efivarfs"
)

// Environment variables in which stage-1 passes what it verified.
const (
	envSlot     = "METROPOLIS_STAGE1_SLOT"
	envRootHash = "METROPOLIS_STAGE1_ROOT_HASH"
	envDevice   = "METROPOLIS_STAGE1_DEVICE"
)

// tpmClass lists the TPMs the kernel found.
const tpmClass = "/sys/class/tpm"

// bootFacts are what the banner reports.
type bootFacts struct {
	Slot, RootHash, Device string
	SecureBoot             string
	TPM                    string
}

// gatherFacts collects the boot's facts, describing what it cannot find
// rather than failing. It removes stage-1's variables from the
// environment, so that no process the core starts inherits them.
func gatherFacts() bootFacts {
	f := bootFacts{
		Slot:     os.Getenv(envSlot),
		RootHash: os.Getenv(envRootHash),
		Device:   os.Getenv(envDevice),
	}
	for _, v := range []string{envSlot, envRootHash, envDevice} {
		os.Unsetenv(v)
	}
	for _, s := range []*string{&f.Slot, &f.RootHash, &f.Device} {
		if *s == "" {
			*s = "unknown (not started by stage-1)"
		}
	}
	f.SecureBoot = secureBootState()
	f.TPM = tpmState(tpmClass)
	return f
}

// secureBootState describes whether the firmware enforced Secure Boot, from
// the efivarfs that bringup mounted.
func secureBootState() string {
	if _, err := os.Stat("/sys/firmware/efi"); err != nil {
		return "no (not booted by UEFI firmware)"
	}
	on, err := efivarfs.System.SecureBoot()
	switch {
	case errors.Is(err, efivarfs.ErrNotFound):
		return "no (firmware without Secure Boot)"
	case err != nil:
		return fmt.Sprintf("unknown (%v)", err)
	case on:
		return "enabled"
	default:
		return "disabled"
	}
}

// tpmState describes the TPMs in the sysfs class directory dir.
func tpmState(dir string) string {
	entries, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Sprintf("unknown (%v)", err)
	}
	if len(entries) == 0 {
		return "none"
	}
	version := ""
	if v, err := os.ReadFile(dir + "/" + entries[0].Name() + "/tpm_version_major"); err == nil && len(v) > 0 {
		version = fmt.Sprintf(", TPM %s.0", string(v[:len(v)-1]))
	}
	return fmt.Sprintf("present (%s%s)", entries[0].Name(), version)
}

// banner returns the version banner and the boot summary, one fact per
// line.
func banner(v string, f bootFacts) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Metropolis node %s\n", v)
	fmt.Fprintf(&b, "  slot:        %s\n", f.Slot)
	fmt.Fprintf(&b, "  system:      %s, dm-verity root hash %s\n", f.Device, f.RootHash)
	fmt.Fprintf(&b, "  Secure Boot: %s\n", f.SecureBoot)
	fmt.Fprintf(&b, "  TPM:         %s\n", f.TPM)
	fmt.Fprintf(&b, "node core up")
	return b.String()
}
