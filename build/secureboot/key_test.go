package secureboot

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io/fs"
	"math/big"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// certFor returns a PEM self-signed certificate for a key.
func certFor(t *testing.T, priv any, pub any) []byte {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "test"},
		NotBefore:    time.Now(),
		NotAfter:     time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, priv)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func pkcs8(t *testing.T, priv any) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

func TestLoadKey(t *testing.T) {
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	otherRSA, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	// Go refuses to generate RSA keys under 1024 bits.
	smallRSA, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	_, edKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rsaCert := certFor(t, rsaKey, &rsaKey.PublicKey)

	for _, tc := range []struct {
		name      string
		key, cert []byte
		want      string // error substring; empty for success
	}{
		{"PKCS #8", pkcs8(t, rsaKey), rsaCert, ""},
		{"PKCS #1", pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(rsaKey)}), rsaCert, ""},
		{"ed25519", pkcs8(t, edKey), certFor(t, edKey, edKey.Public()), "ed25519.PrivateKey: UEFI firmware verifies only RSA"},
		{"ECDSA", pkcs8(t, ecKey), certFor(t, ecKey, &ecKey.PublicKey), "ecdsa.PrivateKey: UEFI firmware verifies only RSA"},
		{"small RSA", pkcs8(t, smallRSA), certFor(t, smallRSA, &smallRSA.PublicKey), "has 1024 bits, want at least 2048"},
		{"key of another certificate", pkcs8(t, otherRSA), rsaCert, "does not belong to certificate"},
		{"not PEM", []byte("key"), rsaCert, "holds no PEM block"},
		{"certificate as key", rsaCert, rsaCert, `PEM block "CERTIFICATE", want PRIVATE KEY`},
		{"key as certificate", pkcs8(t, rsaKey), pkcs8(t, rsaKey), `PEM block "PRIVATE KEY", want CERTIFICATE`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key, err := LoadKey(writeFile(t, "key.pem", tc.key), writeFile(t, "cert.pem", tc.cert))
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tc.want == "" && !rsaKey.PublicKey.Equal(key.Signer.Public()):
				t.Error("loaded another key")
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("got error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestLoadKeyMissing(t *testing.T) {
	_, dir := testKey(t)
	for _, paths := range [][2]string{
		{filepath.Join(dir, "missing"), filepath.Join(dir, DevCertFile)},
		{filepath.Join(dir, DevKeyFile), filepath.Join(dir, "missing")},
	} {
		if _, err := LoadKey(paths[0], paths[1]); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("LoadKey(%s, %s): got error %v, want one for a missing file", paths[0], paths[1], err)
		}
	}
}
