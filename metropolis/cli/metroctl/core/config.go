package core

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// Names of the files in a configuration directory.
const (
	ownerKeyFile         = "owner-key.pem"
	ownerCertificateFile = "owner.pem"
	trustedCAFile        = "ca.pem"
)

// PEM block types of the files.
const (
	pemPrivateKey  = "PRIVATE KEY"
	pemCertificate = "CERTIFICATE"
)

// Errors for missing files, to be checked with errors.Is; the errors
// returned wrap them with the path looked at.
var (
	ErrNoOwnerKey         = errors.New("no owner key")
	ErrNoOwnerCertificate = errors.New("no owner certificate")
	ErrNoTrustedCA        = errors.New("no trusted cluster CA")
)

// Config is a configuration directory: the owner's private key, the owner
// certificate the cluster issued for it, and the CA of the cluster the
// operator trusts. One directory belongs to one cluster.
type Config struct {
	// Dir is the directory's path. It is created when something is saved.
	Dir string
}

// DefaultConfigDir returns the default configuration directory:
// $XDG_CONFIG_HOME/metroctl, or ~/.config/metroctl.
func DefaultConfigDir() (string, error) {
	dir, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("finding the configuration directory: %w", err)
	}
	return filepath.Join(dir, "metroctl"), nil
}

// OwnerKeyPath is where the owner's private key is kept.
func (c Config) OwnerKeyPath() string { return filepath.Join(c.Dir, ownerKeyFile) }

// OwnerCertificatePath is where the owner certificate is kept.
func (c Config) OwnerCertificatePath() string { return filepath.Join(c.Dir, ownerCertificateFile) }

// TrustedCAPath is where the trusted cluster CA certificate is kept.
func (c Config) TrustedCAPath() string { return filepath.Join(c.Dir, trustedCAFile) }

// OwnerKey reads the owner's private key. It wraps ErrNoOwnerKey if there is
// none.
func (c Config) OwnerKey() (ed25519.PrivateKey, error) {
	der, err := readPEM(c.OwnerKeyPath(), pemPrivateKey, ErrNoOwnerKey)
	if err != nil {
		return nil, err
	}
	key, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("owner key %s: %w", c.OwnerKeyPath(), err)
	}
	priv, ok := key.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("owner key %s: a %T, not an ed25519 key", c.OwnerKeyPath(), key)
	}
	return priv, nil
}

// EnsureOwnerKey returns the owner's private key, creating it first if there
// is none. created says whether it did. Concurrent callers end up with the
// same key.
func (c Config) EnsureOwnerKey() (key ed25519.PrivateKey, created bool, err error) {
	key, err = c.OwnerKey()
	if !errors.Is(err, ErrNoOwnerKey) {
		return key, false, err
	}
	_, key, err = ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, false, fmt.Errorf("generating owner key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, false, fmt.Errorf("encoding owner key: %w", err)
	}
	err = writeFile(c.OwnerKeyPath(), pemEncode(pemPrivateKey, der), 0o600, false)
	if errors.Is(err, fs.ErrExist) {
		// Somebody else created one meanwhile; theirs is the key.
		key, err = c.OwnerKey()
		return key, false, err
	}
	if err != nil {
		return nil, false, fmt.Errorf("saving owner key: %w", err)
	}
	return key, true, nil
}

// OwnerCertificate returns the owner certificate with the owner's private
// key, ready to authenticate with. It wraps ErrNoOwnerKey or
// ErrNoOwnerCertificate if either is missing.
func (c Config) OwnerCertificate() (tls.Certificate, error) {
	key, err := c.OwnerKey()
	if err != nil {
		return tls.Certificate{}, err
	}
	leaf, err := c.ownerCertificateLeaf()
	if err != nil {
		return tls.Certificate{}, err
	}
	if !key.Public().(ed25519.PublicKey).Equal(leaf.PublicKey) {
		return tls.Certificate{}, fmt.Errorf("owner certificate %s is not for the owner key %s", c.OwnerCertificatePath(), c.OwnerKeyPath())
	}
	return tls.Certificate{Certificate: [][]byte{leaf.Raw}, PrivateKey: key, Leaf: leaf}, nil
}

func (c Config) ownerCertificateLeaf() (*x509.Certificate, error) {
	der, err := readPEM(c.OwnerCertificatePath(), pemCertificate, ErrNoOwnerCertificate)
	if err != nil {
		return nil, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("owner certificate %s: %w", c.OwnerCertificatePath(), err)
	}
	return leaf, nil
}

// Names of the files ExportOwnerCredentials writes.
const (
	ExportedCertificateFile = "owner.crt"
	ExportedKeyFile         = "owner.key"
)

// ExportOwnerCredentials writes the owner certificate and the owner's
// private key (PKCS#8) as PEM files named ExportedCertificateFile and
// ExportedKeyFile into dir, for tools that take a client certificate and key
// as files. The key file is readable only by the user. Existing files are
// not overwritten: it fails instead, writing nothing.
func (c Config) ExportOwnerCredentials(dir string) error {
	cert, err := c.OwnerCertificate()
	if err != nil {
		return err
	}
	der, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	if err != nil {
		return fmt.Errorf("encoding owner key: %w", err)
	}
	certPath, keyPath := filepath.Join(dir, ExportedCertificateFile), filepath.Join(dir, ExportedKeyFile)
	for _, p := range []string{certPath, keyPath} {
		if _, err := os.Lstat(p); err == nil {
			return fmt.Errorf("%s already exists; move it away or export elsewhere", p)
		}
	}
	if err := writeFile(keyPath, pemEncode(pemPrivateKey, der), 0o600, false); err != nil {
		return fmt.Errorf("writing owner key: %w", err)
	}
	if err := writeFile(certPath, pemEncode(pemCertificate, cert.Leaf.Raw), 0o644, false); err != nil {
		os.Remove(keyPath)
		return fmt.Errorf("writing owner certificate: %w", err)
	}
	return nil
}

// SaveOwnerCertificate stores the owner certificate (DER), replacing any
// previous one.
func (c Config) SaveOwnerCertificate(der []byte) error {
	if err := writeFile(c.OwnerCertificatePath(), pemEncode(pemCertificate, der), 0o644, true); err != nil {
		return fmt.Errorf("saving owner certificate: %w", err)
	}
	return nil
}

// TrustedCA reads the trusted cluster CA certificate. It wraps
// ErrNoTrustedCA if there is none.
func (c Config) TrustedCA() (*x509.Certificate, error) {
	der, err := readPEM(c.TrustedCAPath(), pemCertificate, ErrNoTrustedCA)
	if err != nil {
		return nil, err
	}
	ca, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("trusted CA %s: %w", c.TrustedCAPath(), err)
	}
	return ca, nil
}

// SaveTrustedCA stores ca as the trusted cluster CA, replacing any previous
// one.
func (c Config) SaveTrustedCA(ca *x509.Certificate) error {
	if err := writeFile(c.TrustedCAPath(), pemEncode(pemCertificate, ca.Raw), 0o644, true); err != nil {
		return fmt.Errorf("saving trusted CA: %w", err)
	}
	return nil
}

// readPEM returns the DER contents of the single PEM block of type pemType in
// the file at path, or an error wrapping missing if the file does not exist.
func readPEM(path, pemType string, missing error) ([]byte, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s does not exist", missing, path)
	}
	if err != nil {
		return nil, err
	}
	block, rest := pem.Decode(data)
	if block == nil {
		return nil, fmt.Errorf("%s holds no PEM data", path)
	}
	if block.Type != pemType {
		return nil, fmt.Errorf("%s holds a PEM block of type %q, want %q", path, block.Type, pemType)
	}
	if next, _ := pem.Decode(rest); next != nil {
		return nil, fmt.Errorf("%s holds more than one PEM block", path)
	}
	return block.Bytes, nil
}

func pemEncode(pemType string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: pemType, Bytes: der})
}

// writeFile writes data to path with the given mode, creating its directory
// (readable only by the user, as it holds a private key) if needed. The file
// appears complete or not at all. Unless replace is set, an existing file is
// left alone and an error wrapping fs.ErrExist returned.
func writeFile(path string, data []byte, mode os.FileMode, replace bool) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	// Once renamed or linked into place, only the temporary name goes.
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if replace {
		return os.Rename(tmp.Name(), path)
	}
	// A hard link, unlike a rename, fails if the target exists.
	return os.Link(tmp.Name(), path)
}
