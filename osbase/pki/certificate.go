package pki

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"fmt"
	"math/big"
	"sync"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// CertificateMode says who holds the private key of a Certificate.
type CertificateMode int

const (
	// CertificateManaged certificates get a private key generated on
	// issuance, which is stored in etcd together with the certificate.
	CertificateManaged CertificateMode = iota
	// CertificateExternal certificates are issued for the PublicKey of a
	// key pair held elsewhere. Only the certificate is stored.
	CertificateExternal
)

// Certificate is a certificate stored in etcd. Its exported fields describe
// it and must not change once it is in use. The first successful Ensure
// loads it into memory; later calls on the same value do not contact etcd.
type Certificate struct {
	// Namespace is where the certificate is stored.
	Namespace *Namespace
	// Issuer signs the certificate: a Certificate acting as a CA, possibly
	// in another namespace, or SelfSigned. Every chain of issuers has to end
	// in SelfSigned.
	Issuer Issuer
	// Template is used when the certificate is issued, typically one
	// returned by CA, Server or Client. Its serial number and subject key ID
	// are always replaced, unset validity bounds are replaced by unlimited
	// ones. Once the certificate exists in etcd, the template is ignored.
	Template x509.Certificate
	// Name identifies the certificate within its namespace. It may contain
	// letters, digits and the characters '.', '_', '-' and ':'.
	Name string
	// Mode says whether the private key is managed here or held elsewhere.
	Mode CertificateMode
	// PublicKey is the key to certify for CertificateExternal and must be
	// nil for CertificateManaged.
	PublicKey ed25519.PublicKey

	mu   sync.Mutex
	der  []byte
	cert *x509.Certificate
	// key is only set for managed certificates.
	key ed25519.PrivateKey
}

// maxNameLength keeps names well within etcd's key size limits.
const maxNameLength = 253

// Ensure returns the DER-encoded certificate, issuing and storing it first if
// it does not exist yet, loading its issuer through the issuer's own Ensure.
// Concurrent calls from any number of etcd clients all return the same
// certificate: the first one to store it wins and the others adopt it.
func (c *Certificate) Ensure(ctx context.Context, kv clientv3.KV) ([]byte, error) {
	if err := c.validate(); err != nil {
		return nil, fmt.Errorf("ensuring certificate %q: %w", c.Name, err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.der == nil {
		if err := c.ensureLocked(ctx, kv); err != nil {
			return nil, fmt.Errorf("ensuring certificate %q: %w", c.Name, err)
		}
	}
	return bytes.Clone(c.der), nil
}

// PrivateKey returns the private key of a managed certificate on which
// Ensure has succeeded.
func (c *Certificate) PrivateKey() (ed25519.PrivateKey, error) {
	if c.Mode == CertificateExternal {
		return nil, fmt.Errorf("certificate %q is external: its private key is held elsewhere", c.Name)
	}
	_, key := c.loaded()
	if key == nil {
		return nil, fmt.Errorf("certificate %q has not been ensured yet", c.Name)
	}
	return key, nil
}

// loaded returns what the first successful Ensure loaded, or nils before
// that.
func (c *Certificate) loaded() (*x509.Certificate, ed25519.PrivateKey) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cert, c.key
}

func (c *Certificate) validate() error {
	if c.Namespace == nil {
		return errors.New("no namespace set")
	}
	if err := validateName(c.Name); err != nil {
		return err
	}
	switch issuer := c.Issuer.(type) {
	case nil:
		return errors.New("no issuer set")
	case *Certificate:
		if issuer == c {
			return errors.New("certificate is its own issuer; use SelfSigned instead")
		}
		if err := c.checkIssuerChain(); err != nil {
			return err
		}
		if issuer.Mode == CertificateExternal {
			return fmt.Errorf("issuer %q is external and cannot sign", issuer.Name)
		}
	}
	switch c.Mode {
	case CertificateManaged:
		if c.PublicKey != nil {
			return errors.New("managed certificate must not have a PublicKey: its key pair is generated on issuance")
		}
	case CertificateExternal:
		if len(c.PublicKey) != ed25519.PublicKeySize {
			return fmt.Errorf("external certificate needs a %d-byte ed25519 PublicKey, got %d bytes", ed25519.PublicKeySize, len(c.PublicKey))
		}
		if c.Issuer == SelfSigned {
			return errors.New("external certificate cannot be self-signed: its private key is unknown")
		}
	default:
		return fmt.Errorf("unknown certificate mode %d", c.Mode)
	}
	return nil
}

// checkIssuerChain refuses issuer loops: ensuring a certificate ensures its
// issuer first, so a loop would wait on itself forever instead of failing.
func (c *Certificate) checkIssuerChain() error {
	seen := map[*Certificate]bool{c: true}
	for issuer, ok := c.Issuer.(*Certificate); ok; issuer, ok = issuer.Issuer.(*Certificate) {
		if seen[issuer] {
			return fmt.Errorf("issuer chain of %q loops back to %q; every chain must end in SelfSigned", c.Name, issuer.Name)
		}
		seen[issuer] = true
	}
	return nil
}

func validateName(name string) error {
	if name == "" {
		return errors.New("certificate name is empty")
	}
	if len(name) > maxNameLength {
		return fmt.Errorf("certificate name is %d bytes long, at most %d are allowed", len(name), maxNameLength)
	}
	for _, r := range name {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		case r == '.', r == '_', r == '-', r == ':':
		default:
			return fmt.Errorf("certificate name %q contains %q; only letters, digits and . _ - : are allowed", name, r)
		}
	}
	return nil
}

// ensureLocked loads the certificate from etcd, or issues and stores it if it
// is not there. It must be called with c.mu held.
func (c *Certificate) ensureLocked(ctx context.Context, kv clientv3.KV) error {
	ns := c.Namespace
	certKey, keyKey := ns.certificateKey(c.Name), ns.privateKeyKey(c.Name)
	reads := []clientv3.Op{clientv3.OpGet(certKey)}
	if c.Mode == CertificateManaged {
		reads = append(reads, clientv3.OpGet(keyKey))
	}

	// Issuing loads the issuer and signs, so first check whether there is
	// anything to do. Reading inside a transaction gets certificate and key
	// from the same revision.
	res, err := kv.Txn(ctx).Then(reads...).Commit()
	if err != nil {
		return fmt.Errorf("reading from etcd: %w", err)
	}
	if found, err := c.adopt(res.Responses); found || err != nil {
		return err
	}

	der, key, err := c.issue(ctx, kv)
	if err != nil {
		return err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return fmt.Errorf("parsing issued certificate: %w", err)
	}
	writes := []clientv3.Op{clientv3.OpPut(certKey, string(der))}
	if key != nil {
		pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			return fmt.Errorf("encoding private key: %w", err)
		}
		writes = append(writes, clientv3.OpPut(keyKey, string(pkcs8)))
		if cert.IsCA && cert.KeyUsage&x509.KeyUsageCRLSign != 0 {
			// Creating the CA's first CRL together with the CA means that
			// every CA able to revoke has a CRL to serve and to watch.
			crl, err := signCRL(cert, key, big.NewInt(1), nil)
			if err != nil {
				return fmt.Errorf("signing initial CRL: %w", err)
			}
			writes = append(writes, clientv3.OpPut(ns.crlKey(c.Name), string(crl)))
		}
	}

	res, err = kv.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(certKey), "=", 0)).
		Then(writes...).
		Else(reads...).
		Commit()
	if err != nil {
		return fmt.Errorf("storing in etcd: %w", err)
	}
	if !res.Succeeded {
		// Somebody else stored the certificate since we looked.
		found, err := c.adopt(res.Responses)
		if err == nil && !found {
			err = errors.New("certificate vanished from etcd while it was being issued")
		}
		return err
	}
	c.der, c.cert, c.key = der, cert, key
	return nil
}

// adopt takes over the certificate (and for managed certificates the private
// key) from the responses to the reads built by ensureLocked. It reports
// whether the certificate was stored at all and fails if what is stored does
// not fit c.
func (c *Certificate) adopt(responses []*etcdserverpb.ResponseOp) (bool, error) {
	certKVs := responses[0].GetResponseRange().Kvs
	if len(certKVs) == 0 {
		return false, nil
	}
	der := certKVs[0].Value
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return true, fmt.Errorf("parsing stored certificate: %w", err)
	}
	pub, ok := cert.PublicKey.(ed25519.PublicKey)
	if !ok {
		return true, fmt.Errorf("stored certificate has a %T key, not ed25519", cert.PublicKey)
	}

	var key ed25519.PrivateKey
	switch c.Mode {
	case CertificateExternal:
		if !pub.Equal(c.PublicKey) {
			return true, errors.New("name is already taken by a certificate for another public key")
		}
	case CertificateManaged:
		keyKVs := responses[1].GetResponseRange().Kvs
		if len(keyKVs) == 0 {
			return true, errors.New("stored certificate has no private key; it was issued as an external certificate")
		}
		parsed, err := x509.ParsePKCS8PrivateKey(keyKVs[0].Value)
		if err != nil {
			return true, fmt.Errorf("parsing stored private key: %w", err)
		}
		if key, ok = parsed.(ed25519.PrivateKey); !ok || !pub.Equal(key.Public()) {
			return true, errors.New("stored private key does not belong to the stored certificate")
		}
	}
	c.der, c.cert, c.key = der, cert, key
	return true, nil
}

// issue creates a new certificate, for managed certificates together with a
// new private key.
func (c *Certificate) issue(ctx context.Context, kv clientv3.KV) ([]byte, ed25519.PrivateKey, error) {
	pub, key := c.PublicKey, ed25519.PrivateKey(nil)
	if c.Mode == CertificateManaged {
		var err error
		if pub, key, err = ed25519.GenerateKey(rand.Reader); err != nil {
			return nil, nil, fmt.Errorf("generating private key: %w", err)
		}
	}
	template, err := prepareTemplate(c.Template, pub)
	if err != nil {
		return nil, nil, err
	}
	der, err := c.Issuer.sign(ctx, kv, template, pub, key)
	if err != nil {
		return nil, nil, fmt.Errorf("issuing: %w", err)
	}
	return der, key, nil
}
