package secureboot

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestSignatureListMatchesEfitools compares SignatureList with efitools'
// cert-to-efi-sig-list, and reads the certificate back with
// sig-list-to-certs.
func TestSignatureListMatchesEfitools(t *testing.T) {
	requireTool(t, "cert-to-efi-sig-list", "efitools")
	requireTool(t, "sig-list-to-certs", "efitools")
	key, dir := testKey(t)
	esl := SignatureList(key.Certificate)

	theirs := filepath.Join(t.TempDir(), "efitools.esl")
	if out, err := exec.Command("cert-to-efi-sig-list", "-g", ownerGUIDString, filepath.Join(dir, DevCertFile), theirs).CombinedOutput(); err != nil {
		t.Fatalf("cert-to-efi-sig-list: %v\n%s", err, out)
	}
	want, err := os.ReadFile(theirs)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(esl, want) {
		t.Errorf("SignatureList differs from efitools':\n% x\nwant\n% x", esl[:64], want[:64])
	}

	prefix := filepath.Join(t.TempDir(), "cert")
	if out, err := exec.Command("sig-list-to-certs", writeFile(t, "our.esl", esl), prefix).CombinedOutput(); err != nil {
		t.Fatalf("sig-list-to-certs: %v\n%s", err, out)
	}
	got, err := os.ReadFile(prefix + "-0.der")
	if err != nil {
		t.Fatalf("sig-list-to-certs wrote no certificate: %v", err)
	}
	if !bytes.Equal(got, key.Certificate.Raw) {
		t.Error("sig-list-to-certs read back another certificate")
	}
}

func TestParseGUID(t *testing.T) {
	// EFI_CERT_X509_GUID as the UEFI specification spells it:
	// {0xa5c059a1, 0x94e4, 0x4aa7, {0x87, 0xb5, 0xab, 0x15, 0x5c, 0x2b, 0xf0, 0x72}}.
	want := GUID{0xa1, 0x59, 0xc0, 0xa5, 0xe4, 0x94, 0xa7, 0x4a, 0x87, 0xb5, 0xab, 0x15, 0x5c, 0x2b, 0xf0, 0x72}
	if certX509GUID != want {
		t.Errorf("EFI_CERT_X509_GUID encodes as % x, want % x", certX509GUID, want)
	}
	for _, bad := range []string{
		"",
		"a5c059a1-94e4-4aa7-87b5-ab155c2bf07",
		"a5c059a194e44aa787b5ab155c2bf072",
		"a5c059a1-94e4-4aa7-87b5ab-155c2bf072",
		"g5c059a1-94e4-4aa7-87b5-ab155c2bf072",
	} {
		if _, err := parseGUID(bad); err == nil || !strings.Contains(err.Error(), "GUID") {
			t.Errorf("parseGUID(%q): got error %v, want one", bad, err)
		}
	}
}
