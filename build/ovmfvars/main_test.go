package main

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"metropolis.dev/build/secureboot"
	"metropolis.dev/osbase/efi/ovmfvars"
)

// writeCert writes a new self-signed certificate as DER and PEM files.
func writeCert(t *testing.T) (cert *x509.Certificate, derPath, pemPath string) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "ovmfvars test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	if cert, err = x509.ParseCertificate(der); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	derPath, pemPath = filepath.Join(dir, "cert.der"), filepath.Join(dir, "cert.pem")
	if err := os.WriteFile(derPath, der, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(pemPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	return cert, derPath, pemPath
}

func runOK(t *testing.T, args ...string) string {
	t.Helper()
	var stdout, stderr bytes.Buffer
	if err := run(args, &stdout, &stderr); err != nil {
		t.Fatalf("run %q: %v\n%s", args, err, stderr.String())
	}
	return stdout.String()
}

func TestEnroll(t *testing.T) {
	cert, derPath, pemPath := writeCert(t)
	dir := t.TempDir()
	fromDER, fromPEM := filepath.Join(dir, "der.fd"), filepath.Join(dir, "pem.fd")
	runOK(t, "-cert", derPath, "-out", fromDER)
	runOK(t, "-template", defaultTemplate, "-cert", pemPath, "-out", fromPEM)
	a, err := os.ReadFile(fromDER)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(fromPEM)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) {
		t.Error("enrolling the certificate from DER and from PEM gave different stores")
	}
	s, err := ovmfvars.Parse(a)
	if err != nil {
		t.Fatal(err)
	}
	esl := secureboot.SignatureList(cert)
	for _, v := range []struct {
		name   string
		vendor ovmfvars.GUID
	}{{"PK", ovmfvars.GlobalVariableGUID}, {"KEK", ovmfvars.GlobalVariableGUID}, {"db", ovmfvars.ImageSecurityDatabaseGUID}} {
		if got := s.Get(v.name, v.vendor); got == nil || !bytes.Equal(got.Data, esl) {
			t.Errorf("%s does not hold the certificate's signature list", v.name)
		}
	}

	list := runOK(t, "-list", fromDER)
	for _, want := range []string{" PK ", " KEK ", " db ", " SecureBootEnable ", " CustomMode ", "time=2020-01-01T00:00:00Z", "bytes free"} {
		if !strings.Contains(list, want) {
			t.Errorf("the listing does not contain %q:\n%s", want, list)
		}
	}
}

func TestErrors(t *testing.T) {
	_, derPath, _ := writeCert(t)
	dir := t.TempDir()
	out := filepath.Join(dir, "out.fd")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-out", out}, "both -cert and -out are required"},
		{[]string{"-cert", derPath, "-out", out, "extra"}, "unexpected arguments"},
		{[]string{"-list", out, "-cert", derPath}, "-list excludes"},
		{[]string{"-cert", filepath.Join(dir, "missing"), "-out", out}, "reading certificate"},
		{[]string{"-cert", defaultTemplate, "-out", out}, "parsing certificate"},
		{[]string{"-template", derPath, "-cert", derPath, "-out", out}, "parsing the template"},
		{[]string{"-template", "/usr/share/OVMF/OVMF_VARS_4M.snakeoil.fd", "-cert", derPath, "-out", out}, "platform key already"},
		{[]string{"-list", derPath}, "firmware volume"},
	} {
		var stdout, stderr bytes.Buffer
		if err := run(tc.args, &stdout, &stderr); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("run %q returned %v, want an error containing %q", tc.args, err, tc.want)
		}
	}
	if _, err := os.Stat(out); err == nil {
		t.Error("a failed run wrote the output")
	}
}
