package secureboot

import (
	"bytes"
	"crypto/ed25519"
	"encoding/asn1"
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"metropolis.dev/build/uki/pefile"
)

func sign(t *testing.T, image []byte, key *Key) []byte {
	t.Helper()
	signed, err := Sign(image, key)
	if err != nil {
		t.Fatalf("Sign: %v", err)
	}
	return signed
}

func sbverify(certPath, imagePath string) (string, error) {
	out, err := exec.Command("sbverify", "--cert", certPath, imagePath).CombinedOutput()
	return string(out), err
}

// TestSignVerifies checks signatures with sbverify, which verifies them as
// firmware does: against a certificate it trusts.
func TestSignVerifies(t *testing.T) {
	requireTool(t, "sbverify", "sbsigntool")
	key, keyDir := testKey(t)
	_, otherDir := newTestKey(t)
	ourCert, otherCert := filepath.Join(keyDir, DevCertFile), filepath.Join(otherDir, DevCertFile)

	image := testImage(t)
	signed := sign(t, image, key)
	signedPath := writeFile(t, "signed.efi", signed)
	tampered := bytes.Clone(signed)
	tampered[0x1000] ^= 1 // in the stub's .text
	tamperedTail := bytes.Clone(signed)
	tamperedTail[len(image)-1] ^= 1 // in the symbol table after the sections

	for _, tc := range []struct {
		name, cert, image string
		ok                bool
	}{
		{"our certificate", ourCert, signedPath, true},
		{"another certificate", otherCert, signedPath, false},
		{"unsigned", ourCert, writeFile(t, "unsigned.efi", image), false},
		{"changed section", ourCert, writeFile(t, "tampered.efi", tampered), false},
		{"changed data after the sections", ourCert, writeFile(t, "tail.efi", tamperedTail), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := sbverify(tc.cert, tc.image)
			if tc.ok && (err != nil || !strings.Contains(out, "Signature verification OK")) {
				t.Errorf("sbverify rejected the signature: %v\n%s", err, out)
			}
			if !tc.ok && err == nil {
				t.Errorf("sbverify accepted it:\n%s", out)
			}
		})
	}
}

// TestSignMatchesSbsign signs an image with sbsign too: both must sign the
// same Authenticode hash, and the files may differ only in the signature
// and what depends on its size.
func TestSignMatchesSbsign(t *testing.T) {
	requireTool(t, "sbsign", "sbsigntool")
	key, keyDir := testKey(t)
	image := testImage(t)
	ours := sign(t, image, key)

	dir := t.TempDir()
	in, out := writeFile(t, "image.efi", image), filepath.Join(dir, "sbsign.efi")
	cmd := exec.Command("sbsign", "--key", filepath.Join(keyDir, DevKeyFile), "--cert", filepath.Join(keyDir, DevCertFile), "--output", out, in)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sbsign: %v\n%s", err, b)
	}
	theirs, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}

	oursImg, err := pefile.Parse(ours)
	if err != nil {
		t.Fatal(err)
	}
	theirsImg, err := pefile.Parse(theirs)
	if err != nil {
		t.Fatalf("sbsign's output: %v", err)
	}
	oursOff, _ := oursImg.CertificateTable()
	theirsOff, _ := theirsImg.CertificateTable()
	if oursOff != theirsOff {
		t.Fatalf("certificate table at %#x, sbsign put it at %#x", oursOff, theirsOff)
	}
	if got, want := signedHash(t, ours[oursOff:]), signedHash(t, theirs[theirsOff:]); !bytes.Equal(got, want) {
		t.Errorf("signed Authenticode hash %x, sbsign signed %x", got, want)
	}
	// Apart from the checksum and the size of the certificate table, the
	// files agree up to the table.
	a, b := bytes.Clone(ours[:oursOff]), bytes.Clone(theirs[:theirsOff])
	for _, img := range [][]byte{a, b} {
		binary.LittleEndian.PutUint32(img[oursImg.ChecksumOffset():], 0)
		binary.LittleEndian.PutUint32(img[oursImg.CertificateTableEntryOffset()+4:], 0)
	}
	if !bytes.Equal(a, b) {
		t.Error("the signed files differ before the certificate table")
	}
}

// signedHash returns the image hash in the SpcIndirectDataContent of the
// signature in a certificate table.
func signedHash(t *testing.T, table []byte) []byte {
	t.Helper()
	length := binary.LittleEndian.Uint32(table)
	if binary.LittleEndian.Uint16(table[4:]) != winCertificateRevision || binary.LittleEndian.Uint16(table[6:]) != winCertificateTypePKCSSigned {
		t.Fatalf("certificate table does not start with a PKCS #7 WIN_CERTIFICATE: % x", table[:8])
	}
	var ci contentInfo
	if _, err := asn1.Unmarshal(table[winCertificateHeaderSize:length], &ci); err != nil {
		t.Fatalf("parsing signature: %v", err)
	}
	var sd struct {
		Version          int
		DigestAlgorithms asn1.RawValue
		ContentInfo      struct {
			ContentType asn1.ObjectIdentifier
			Content     struct {
				Data          asn1.RawValue
				MessageDigest digestInfo
			} `asn1:"explicit,tag:0"`
		}
		Certificates asn1.RawValue
		SignerInfos  asn1.RawValue
	}
	if _, err := asn1.Unmarshal(ci.Content.Bytes, &sd); err != nil {
		t.Fatalf("parsing signed data: %v", err)
	}
	return sd.ContentInfo.Content.MessageDigest.Digest
}

func TestSignReproducible(t *testing.T) {
	key, dir := testKey(t)
	image := testImage(t)
	first := sign(t, image, key)
	// A key loaded anew must sign alike.
	again, err := LoadKey(filepath.Join(dir, DevKeyFile), filepath.Join(dir, DevCertFile))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(first, sign(t, image, again)) {
		t.Error("signing the same image with the same key twice gave different bytes")
	}
}

func TestSignErrors(t *testing.T) {
	key, _ := testKey(t)
	_, edKey, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	image := testImage(t)
	signed := sign(t, image, key)
	for _, tc := range []struct {
		name  string
		image []byte
		key   *Key
		want  string
	}{
		{"signed already", signed, key, "signed already"},
		{"not PE", []byte("MZ"), key, "parsing PE image"},
		{"ed25519 key", image, &Key{Signer: edKey, Certificate: key.Certificate}, "ed25519.PublicKey key: UEFI firmware verifies only RSA"},
	} {
		if _, err := Sign(tc.image, tc.key); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got error %v, want one containing %q", tc.name, err, tc.want)
		}
	}
}

// TestSignatureCertificate checks that the signature carries the signing
// certificate, which firmware needs to find the trusted one.
func TestSignatureCertificate(t *testing.T) {
	key, _ := testKey(t)
	signed := sign(t, testImage(t), key)
	img, err := pefile.Parse(signed)
	if err != nil {
		t.Fatal(err)
	}
	off, _ := img.CertificateTable()
	if !bytes.Contains(signed[off:], key.Certificate.Raw) {
		t.Error("the signature does not include the certificate")
	}
}
