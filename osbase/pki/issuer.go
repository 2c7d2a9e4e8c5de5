package pki

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"fmt"
	"math/big"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Issuer signs certificates: either a *Certificate acting as a CA, or
// SelfSigned. The interface is closed because issuing relies on how this
// package stores CAs.
type Issuer interface {
	// sign issues template for pub. subjectKey is the subject's own private
	// key, or nil if it is held elsewhere.
	sign(ctx context.Context, kv clientv3.KV, template *x509.Certificate, pub ed25519.PublicKey, subjectKey ed25519.PrivateKey) ([]byte, error)
}

type selfSigned struct{}

// SelfSigned is the Issuer of certificates that sign themselves, which is
// what root CAs do. Only managed certificates can be self-signed.
var SelfSigned Issuer = selfSigned{}

func (selfSigned) sign(_ context.Context, _ clientv3.KV, template *x509.Certificate, pub ed25519.PublicKey, subjectKey ed25519.PrivateKey) ([]byte, error) {
	return x509.CreateCertificate(rand.Reader, template, template, pub, subjectKey)
}

func (c *Certificate) sign(ctx context.Context, kv clientv3.KV, template *x509.Certificate, pub ed25519.PublicKey, _ ed25519.PrivateKey) ([]byte, error) {
	if _, err := c.Ensure(ctx, kv); err != nil {
		return nil, fmt.Errorf("loading issuer: %w", err)
	}
	// Validation guarantees that issuers are managed, so the key is set.
	caCert, caKey := c.loaded()
	// What counts is the certificate stored in etcd, not the template the
	// issuer was described with here.
	if !caCert.IsCA {
		return nil, fmt.Errorf("issuer %q is not a CA", c.Name)
	}
	return x509.CreateCertificate(rand.Reader, template, caCert, pub, caKey)
}

// Serial numbers are drawn from [1, 2^127-1]: random, so that a CA never
// reuses one without having to keep count, positive as RFC 5280 requires and
// well within the 20 octets it allows.
var maxSerial = new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 127), big.NewInt(1))

// prepareTemplate returns a copy of template ready to be issued for pub.
func prepareTemplate(template x509.Certificate, pub ed25519.PublicKey) (*x509.Certificate, error) {
	serial, err := rand.Int(rand.Reader, maxSerial)
	if err != nil {
		return nil, fmt.Errorf("generating serial number: %w", err)
	}
	template.SerialNumber = serial.Add(serial, big.NewInt(1))
	// Method 1 of RFC 7093: the leftmost 160 bits of the SHA-256 hash of the
	// public key. Set on every certificate, not only on CAs as
	// x509.CreateCertificate would, so that chains can always be built by
	// key ID.
	id := sha256.Sum256(pub)
	template.SubjectKeyId = id[:20]
	if template.NotBefore.IsZero() {
		template.NotBefore = unlimitedNotBefore
	}
	if template.NotAfter.IsZero() {
		template.NotAfter = unlimitedNotAfter
	}
	return &template, nil
}
