package secureboot

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"time"

	"metropolis.dev/build/debian"
)

// The files of a development key directory.
const (
	// DevKeyFile is the private key, PEM-encoded PKCS #8.
	DevKeyFile = "key.pem"
	// DevCertFile is the self-signed certificate, PEM-encoded.
	DevCertFile = "cert.pem"
	// DevCertDERFile is the certificate in DER, which firmware setup
	// menus enroll from a file.
	DevCertDERFile = "cert.der"
	// DevSignatureListFile is the certificate as an EFI signature list
	// (see SignatureList), to enroll as PK, KEK and db entry.
	DevSignatureListFile = "cert.esl"
)

// DefaultDevKeyDir returns where EnsureDevKey keeps the development key by
// default: secureboot-dev in the Metropolis build cache (under
// $METROPOLIS_CACHE if set, else under the user's cache directory). It is
// outside the repository so that a key is never committed, and it is per
// user and machine so that a development build only boots where its key is
// enrolled.
func DefaultDevKeyDir() (string, error) {
	if dir := os.Getenv(debian.CacheEnv); dir != "" {
		return filepath.Join(dir, "secureboot-dev"), nil
	}
	dir, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("finding the development key's directory (set %s): %w", debian.CacheEnv, err)
	}
	return filepath.Join(dir, "metropolis", "secureboot-dev"), nil
}

// EnsureDevKey returns the development key in dir, creating a new one first
// if dir does not exist. It tells w that a development key is in use, and
// where, every time: an image signed with it boots only on machines that
// enrolled this very key, and trusting it means trusting whoever can read
// dir.
//
// A new key is an RSA-2048 key with a self-signed certificate that never
// expires. It is created in a temporary directory that is renamed to dir,
// so concurrent builds agree on one key and none sees a half-written one.
func EnsureDevKey(dir string, w io.Writer) (*Key, error) {
	keyPath, certPath := filepath.Join(dir, DevKeyFile), filepath.Join(dir, DevCertFile)
	key, err := LoadKey(keyPath, certPath)
	created := false
	if errors.Is(err, fs.ErrNotExist) {
		if created, err = createDevKey(dir); err != nil {
			return nil, err
		}
		key, err = LoadKey(keyPath, certPath)
	}
	if err != nil {
		return nil, fmt.Errorf("development key: %w", err)
	}
	what := "existing"
	if created {
		what = "new"
	}
	fmt.Fprintf(w, "Signing with the %s DEVELOPMENT Secure Boot key in %s.\n"+
		"Machines boot this image under Secure Boot only after enrolling %s from there.\n"+
		"Release builds pass their own key and certificate instead.\n",
		what, dir, DevSignatureListFile)
	return key, nil
}

// createDevKey creates a development key in dir, which must not exist or
// be empty. It reports false if another process created one first.
func createDevKey(dir string) (bool, error) {
	parent := filepath.Dir(dir)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return false, fmt.Errorf("creating development key: %w", err)
	}
	tmp, err := os.MkdirTemp(parent, "."+filepath.Base(dir)+"-")
	if err != nil {
		return false, fmt.Errorf("creating development key: %w", err)
	}
	defer os.RemoveAll(tmp)
	if err := writeDevKey(tmp); err != nil {
		return false, fmt.Errorf("creating development key: %w", err)
	}
	// os.Rename refuses to replace a directory, even an empty one. An
	// empty one goes first; one with files stays and fails the rename.
	_ = os.Remove(dir)
	err = os.Rename(tmp, dir)
	if err == nil {
		return true, nil
	}
	if _, statErr := os.Stat(filepath.Join(dir, DevKeyFile)); statErr == nil {
		// Another build was faster.
		return false, nil
	}
	return false, fmt.Errorf("creating development key: %s has files but no %s; remove it to create a new key: %w", dir, DevKeyFile, err)
}

// writeDevKey writes a new key and its certificate in every form into dir.
func writeDevKey(dir string) error {
	priv, err := rsa.GenerateKey(rand.Reader, minRSABits)
	if err != nil {
		return err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return err
	}
	host, err := os.Hostname()
	if err != nil {
		host = "unknown host"
	}
	template := &x509.Certificate{
		SerialNumber: serial,
		// The host name tells firmware menus and key lists whose
		// development key this is.
		Subject:   pkix.Name{CommonName: "Metropolis development Secure Boot key (" + host + ")"},
		NotBefore: time.Now().Add(-time.Hour),
		// RFC 5280 section 4.1.2.5: a certificate without a
		// well-defined expiration date.
		NotAfter:              time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning},
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, template, template, &priv.PublicKey, priv)
	if err != nil {
		return err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return err
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return err
	}
	for _, f := range []struct {
		name    string
		content []byte
		mode    os.FileMode
	}{
		{DevKeyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8}), 0o600},
		{DevCertFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644},
		{DevCertDERFile, der, 0o644},
		{DevSignatureListFile, SignatureList(cert), 0o644},
	} {
		if err := os.WriteFile(filepath.Join(dir, f.name), f.content, f.mode); err != nil {
			return err
		}
	}
	return nil
}
