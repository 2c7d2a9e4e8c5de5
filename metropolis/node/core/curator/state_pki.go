package curator

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"fmt"

	clientv3 "go.etcd.io/etcd/client/v3"

	"metropolis.dev/metropolis/node/core/identity"
	"metropolis.dev/osbase/pki"
)

// The curator keeps two certificate authorities in its etcd namespace: the
// cluster CA, which identifies nodes and users to each other, and the
// Kubernetes identity CA, which identifies the Kubernetes components of
// worker nodes to the Kubernetes control plane. They are separate so that
// neither kind of certificate can pass as the other.
var (
	clusterPKINamespace    = pki.Namespaced("/cluster-pki/")
	kubernetesPKINamespace = pki.Namespaced("/kubernetes-pki/")
)

// curatorPKI holds the curator's CAs. pki.Certificate caches what it loaded
// from etcd, so one curatorPKI is shared by everything a curator does.
type curatorPKI struct {
	ca           *pki.Certificate
	kubernetesCA *pki.Certificate
}

func newCuratorPKI() *curatorPKI {
	return &curatorPKI{
		ca: &pki.Certificate{
			Namespace: &clusterPKINamespace,
			Issuer:    pki.SelfSigned,
			Template:  identity.CACertificate(),
			Name:      "ca",
			Mode:      pki.CertificateManaged,
		},
		kubernetesCA: &pki.Certificate{
			Namespace: &kubernetesPKINamespace,
			Issuer:    pki.SelfSigned,
			Template:  pki.CA("Metropolis Kubernetes Identity CA"),
			Name:      "identity-ca",
			Mode:      pki.CertificateManaged,
		},
	}
}

// issueExternal issues a certificate for the public key pub from template,
// signed by ca. Every issuance gets a fresh name: certificates are revoked,
// never reissued, so a name must not bring back a revoked certificate when
// the same key is certified again.
func issueExternal(ctx context.Context, kv clientv3.KV, ca *pki.Certificate, prefix string, template x509.Certificate, pub ed25519.PublicKey) ([]byte, error) {
	var suffix [8]byte
	if _, err := rand.Read(suffix[:]); err != nil {
		return nil, fmt.Errorf("generating certificate name: %w", err)
	}
	c := &pki.Certificate{
		Namespace: ca.Namespace,
		Issuer:    ca,
		Template:  template,
		Name:      prefix + ":" + hex.EncodeToString(suffix[:]),
		Mode:      pki.CertificateExternal,
		PublicKey: pub,
	}
	return c.Ensure(ctx, kv)
}

// issueNodeCertificate issues the cluster certificate of the node with the
// public key pub.
func (p *curatorPKI) issueNodeCertificate(ctx context.Context, kv clientv3.KV, pub ed25519.PublicKey) ([]byte, error) {
	return issueExternal(ctx, kv, p.ca, "node:"+identity.NodeID(pub), identity.NodeCertificate(pub), pub)
}

// caCertificate returns the cluster CA certificate (DER).
func (p *curatorPKI) caCertificate(ctx context.Context, kv clientv3.KV) ([]byte, error) {
	return p.ca.Ensure(ctx, kv)
}

// revoke revokes certificates (DER) issued by either CA. Certificates that
// do not parse or were issued by neither CA are skipped: there is nothing
// this curator could revoke them with.
func (p *curatorPKI) revoke(ctx context.Context, kv clientv3.KV, certificates [][]byte) error {
	for _, der := range certificates {
		cert, err := x509.ParseCertificate(der)
		if err != nil {
			continue
		}
		ca, err := p.issuerOf(ctx, kv, cert)
		if err != nil {
			return err
		}
		if ca == nil {
			continue
		}
		if err := ca.Revoke(ctx, kv, cert); err != nil {
			return err
		}
	}
	return nil
}

// issuerOf returns which of the curator's CAs issued cert, or nil.
func (p *curatorPKI) issuerOf(ctx context.Context, kv clientv3.KV, cert *x509.Certificate) (*pki.Certificate, error) {
	for _, ca := range []*pki.Certificate{p.ca, p.kubernetesCA} {
		der, err := ca.Ensure(ctx, kv)
		if err != nil {
			return nil, err
		}
		caCert, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, fmt.Errorf("parsing CA %q: %w", ca.Name, err)
		}
		if bytes.Equal(cert.RawIssuer, caCert.RawSubject) && cert.CheckSignatureFrom(caCert) == nil {
			return ca, nil
		}
	}
	return nil, nil
}

// IssueUserCertificate issues a certificate for the user identity with the
// public key pub, directly in the curator's etcd namespace etcd. Users
// normally obtain certificates through the AAA API; this is for tools and
// tests that administer a cluster's etcd directly.
func IssueUserCertificate(ctx context.Context, etcd *clientv3.Client, identityName string, pub ed25519.PublicKey) ([]byte, error) {
	if err := validateKey("public key", pub); err != nil {
		return nil, err
	}
	if identityName == "" {
		return nil, fmt.Errorf("identity is empty")
	}
	// Ensuring the CA in a cluster that was not bootstrapped would create
	// one.
	if _, err := clusterConfigurationLoad(ctx, etcd); err != nil {
		return nil, err
	}
	p := newCuratorPKI()
	return issueExternal(ctx, etcd, p.ca, "user", identity.UserCertificate(identityName), pub)
}
