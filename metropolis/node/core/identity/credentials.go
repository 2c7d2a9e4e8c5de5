package identity

import (
	"crypto/ed25519"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
)

// Names of the files a node keeps its credentials in, below the directory
// given to Save and ReadNodeCredentials.
const (
	caFileName          = "ca.pem"
	certificateFileName = "cert.pem"
	keyFileName         = "cert-key.pem"
)

// PEM block types of the credential files.
const (
	pemCertificate = "CERTIFICATE"
	pemPrivateKey  = "PRIVATE KEY"
)

// NodeCredentials are what a node that is a member of a cluster
// authenticates with: its private key, its node certificate and the cluster
// CA that issued it. A NodeCredentials value is only ever created through
// NewNodeCredentials or ReadNodeCredentials, so it always holds a node
// certificate of the cluster for the node's own key. It is immutable.
type NodeCredentials struct {
	key     ed25519.PrivateKey
	certDER []byte
	cert    *x509.Certificate
	caDER   []byte
	ca      *x509.Certificate
	id      string
}

// NewNodeCredentials checks that certDER (DER) is a node certificate for
// priv's public key issued by the cluster CA caDER (DER) and returns them as
// NodeCredentials.
func NewNodeCredentials(priv ed25519.PrivateKey, certDER, caDER []byte) (*NodeCredentials, error) {
	if len(priv) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("private key is %d bytes, want %d", len(priv), ed25519.PrivateKeySize)
	}
	cert, err := x509.ParseCertificate(certDER)
	if err != nil {
		return nil, fmt.Errorf("parsing node certificate: %w", err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, fmt.Errorf("parsing cluster CA certificate: %w", err)
	}
	id, err := VerifyNodeInCluster(cert, ca)
	if err != nil {
		return nil, err
	}
	if pub := priv.Public().(ed25519.PublicKey); !pub.Equal(cert.PublicKey) {
		return nil, fmt.Errorf("node certificate of %s is not for the given private key (whose node ID is %s)", id, NodeID(pub))
	}
	return &NodeCredentials{
		key:     priv,
		certDER: certDER,
		cert:    cert,
		caDER:   caDER,
		ca:      ca,
		id:      id,
	}, nil
}

// ID returns the node's ID.
func (c *NodeCredentials) ID() string {
	return c.id
}

// PublicKey returns the node's public key.
func (c *NodeCredentials) PublicKey() ed25519.PublicKey {
	return c.key.Public().(ed25519.PublicKey)
}

// PrivateKey returns the node's private key.
func (c *NodeCredentials) PrivateKey() ed25519.PrivateKey {
	return c.key
}

// Certificate returns the node's certificate. Callers must not modify it.
func (c *NodeCredentials) Certificate() *x509.Certificate {
	return c.cert
}

// ClusterCA returns the certificate of the cluster CA. Callers must not
// modify it.
func (c *NodeCredentials) ClusterCA() *x509.Certificate {
	return c.ca
}

// TLSCredentials returns the node's certificate and key for use as a TLS
// server or client certificate.
func (c *NodeCredentials) TLSCredentials() tls.Certificate {
	return tls.Certificate{
		Certificate: [][]byte{c.certDER},
		PrivateKey:  c.key,
		Leaf:        c.cert,
	}
}

// Save writes the credentials to dir as PEM files: the cluster CA to ca.pem,
// the node certificate to cert.pem and the PKCS #8 private key to
// cert-key.pem, readable only by the owner. Each file is replaced atomically,
// so a crash leaves either the old or the new file, never a partial one. The
// files are not replaced together: a node saves its credentials once, when
// it joins the cluster, and a crash in between leaves an incomplete set that
// ReadNodeCredentials rejects, never a wrong one.
func (c *NodeCredentials) Save(dir string) error {
	key, err := x509.MarshalPKCS8PrivateKey(c.key)
	if err != nil {
		return fmt.Errorf("encoding private key: %w", err)
	}
	files := []struct {
		name, pemType string
		der           []byte
		mode          os.FileMode
	}{
		{keyFileName, pemPrivateKey, key, 0o600},
		{certificateFileName, pemCertificate, c.certDER, 0o644},
		{caFileName, pemCertificate, c.caDER, 0o644},
	}
	for _, f := range files {
		data := pem.EncodeToMemory(&pem.Block{Type: f.pemType, Bytes: f.der})
		if err := writeFileAtomic(filepath.Join(dir, f.name), data, f.mode); err != nil {
			return fmt.Errorf("saving node credentials: %w", err)
		}
	}
	return nil
}

// ReadNodeCredentials reads credentials written by Save from dir and checks
// them like NewNodeCredentials does.
func ReadNodeCredentials(dir string) (*NodeCredentials, error) {
	read := func(name, pemType string) ([]byte, error) {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return nil, err
		}
		return decodePEM(name, data, pemType)
	}
	caDER, err := read(caFileName, pemCertificate)
	if err != nil {
		return nil, fmt.Errorf("reading node credentials: %w", err)
	}
	certDER, err := read(certificateFileName, pemCertificate)
	if err != nil {
		return nil, fmt.Errorf("reading node credentials: %w", err)
	}
	keyDER, err := read(keyFileName, pemPrivateKey)
	if err != nil {
		return nil, fmt.Errorf("reading node credentials: %w", err)
	}
	creds, err := parseNodeCredentials(keyDER, certDER, caDER)
	if err != nil {
		return nil, fmt.Errorf("reading node credentials from %s: %w", dir, err)
	}
	return creds, nil
}

func parseNodeCredentials(keyDER, certDER, caDER []byte) (*NodeCredentials, error) {
	parsed, err := x509.ParsePKCS8PrivateKey(keyDER)
	if err != nil {
		return nil, fmt.Errorf("parsing %s: %w", keyFileName, err)
	}
	key, ok := parsed.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("%s holds a %T key, not ed25519", keyFileName, parsed)
	}
	return NewNodeCredentials(key, certDER, caDER)
}

// decodePEM returns the contents of the single PEM block of type pemType
// that data must consist of.
func decodePEM(name string, data []byte, pemType string) ([]byte, error) {
	block, rest := pem.Decode(data)
	if block == nil {
		return nil, fmt.Errorf("%s: no PEM block found", name)
	}
	if block.Type != pemType {
		return nil, fmt.Errorf("%s: PEM block is %q, want %q", name, block.Type, pemType)
	}
	if extra, _ := pem.Decode(rest); extra != nil {
		return nil, fmt.Errorf("%s: more than one PEM block", name)
	}
	return block.Bytes, nil
}

// writeFileAtomic replaces path with data: it writes and syncs a temporary
// file next to path, renames it over path, and syncs the directory so that
// the rename itself survives a crash.
func writeFileAtomic(path string, data []byte, mode os.FileMode) (err error) {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("creating temporary file for %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err := tmp.Chmod(mode); err != nil {
		return fmt.Errorf("setting mode of %s: %w", tmp.Name(), err)
	}
	if _, err := tmp.Write(data); err != nil {
		return fmt.Errorf("writing %s: %w", tmp.Name(), err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("syncing %s: %w", tmp.Name(), err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("closing %s: %w", tmp.Name(), err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("replacing %s: %w", path, err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("opening %s to sync it: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("syncing %s: %w", dir, err)
	}
	return nil
}
