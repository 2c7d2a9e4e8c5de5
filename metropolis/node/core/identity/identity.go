// Package identity defines who is who in a Metropolis cluster: how nodes are
// named, which certificates the cluster CA issues to nodes and users, and how
// a presented certificate is mapped back to a node or a user.
//
// Every identity is an ed25519 key certified by the cluster CA, a self-signed
// ed25519 CA whose private key the curator keeps in etcd (see osbase/pki). A
// node's ID is derived from its public key, so a node certificate proves the
// node ID by itself.
//
// Node and user certificates are told apart by their whole shape, not by a
// single field, so that no certificate can pass as both:
//
//   - A node certificate has the ServerAuth extended key usage (nodes serve
//     the cluster's APIs) and a common name and single DNS name both equal to
//     the node ID of its own public key. It also has ClientAuth, because nodes
//     call each other's APIs with the same certificate.
//   - A user certificate has exactly the ClientAuth extended key usage, no
//     subject alternative names, and names the user in its common name.
//
// Neither may be a CA certificate. A user certificate therefore can never
// serve an API in the cluster's name, and a node certificate can never be
// mistaken for a user even if a user were given a node-ID-shaped name.
package identity

import (
	"crypto/ed25519"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"

	"metropolis.dev/osbase/pki"
)

// nodeIDPrefix starts every node ID, so that node IDs are recognisable in
// logs and host names.
const nodeIDPrefix = "metropolis-"

// nodeIDKeyBytes is how many leading bytes of the public key a node ID
// encodes: 128 bits are plenty to tell the nodes of one cluster apart.
const nodeIDKeyBytes = 16

// clusterCACommonName is the common name of every cluster's CA certificate.
const clusterCACommonName = "Metropolis Cluster CA"

// NodeID returns the ID of the node with the given public key:
// "metropolis-" followed by the hex encoding of the key's first 16 bytes.
// It panics if pub is not an ed25519 public key, which is a programming
// error: keys from the network are validated before they get here.
func NodeID(pub ed25519.PublicKey) string {
	if len(pub) != ed25519.PublicKeySize {
		panic(fmt.Sprintf("identity.NodeID: public key is %d bytes, want %d", len(pub), ed25519.PublicKeySize))
	}
	return nodeIDPrefix + hex.EncodeToString(pub[:nodeIDKeyBytes])
}

// CACertificate returns the template of a cluster CA certificate, for
// issuing with osbase/pki.
func CACertificate() x509.Certificate {
	return pki.CA(clusterCACommonName)
}

// NodeCertificate returns the template of the certificate of the node with
// public key pub, for issuing with osbase/pki. The node ID is both the common
// name and the only DNS name, so that TLS clients can pin a node by name.
func NodeCertificate(pub ed25519.PublicKey) x509.Certificate {
	id := NodeID(pub)
	template := pki.Server([]string{id}, nil)
	template.Subject.CommonName = id
	template.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
	return template
}

// UserCertificate returns the template of the certificate of the user
// called identity (for example "owner"), for issuing with osbase/pki.
func UserCertificate(identity string) x509.Certificate {
	return pki.Client(identity)
}

// VerifyNodeInCluster checks that cert is a node certificate issued by the
// cluster CA ca and returns the node's ID. It does not check revocation; the
// caller holds the cluster's current revocation list.
func VerifyNodeInCluster(cert, ca *x509.Certificate) (string, error) {
	if err := verifyIssuedBy(cert, ca, x509.ExtKeyUsageServerAuth); err != nil {
		return "", fmt.Errorf("not a node certificate of this cluster: %w", err)
	}
	pub, err := certificateKey(cert)
	if err != nil {
		return "", fmt.Errorf("not a node certificate: %w", err)
	}
	if !slices.Contains(cert.ExtKeyUsage, x509.ExtKeyUsageServerAuth) {
		return "", errors.New("not a node certificate: it lacks the ServerAuth extended key usage")
	}
	id := NodeID(pub)
	if cert.Subject.CommonName != id {
		return "", fmt.Errorf("not a node certificate: common name %q is not the node ID %q of its key", cert.Subject.CommonName, id)
	}
	if len(cert.DNSNames) != 1 || cert.DNSNames[0] != id {
		return "", fmt.Errorf("not a node certificate: DNS names %q are not exactly the node ID %q", cert.DNSNames, id)
	}
	return id, nil
}

// VerifyUserInCluster checks that cert is a user certificate issued by the
// cluster CA ca and returns the user's identity. It does not check
// revocation; the caller holds the cluster's current revocation list.
func VerifyUserInCluster(cert, ca *x509.Certificate) (string, error) {
	if err := verifyIssuedBy(cert, ca, x509.ExtKeyUsageClientAuth); err != nil {
		return "", fmt.Errorf("not a user certificate of this cluster: %w", err)
	}
	if _, err := certificateKey(cert); err != nil {
		return "", fmt.Errorf("not a user certificate: %w", err)
	}
	if !slices.Equal(cert.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}) || len(cert.UnknownExtKeyUsage) != 0 {
		return "", errors.New("not a user certificate: its only extended key usage must be ClientAuth")
	}
	if len(cert.DNSNames)+len(cert.IPAddresses)+len(cert.EmailAddresses)+len(cert.URIs) != 0 {
		return "", errors.New("not a user certificate: it has subject alternative names")
	}
	identity := cert.Subject.CommonName
	if identity == "" {
		return "", errors.New("not a user certificate: it has no common name")
	}
	if strings.HasPrefix(identity, nodeIDPrefix) {
		return "", fmt.Errorf("not a user certificate: identity %q is reserved for nodes", identity)
	}
	return identity, nil
}

// verifyIssuedBy checks that cert was issued for usage by ca, directly, and
// is not itself a CA.
func verifyIssuedBy(cert, ca *x509.Certificate, usage x509.ExtKeyUsage) error {
	if cert == nil || ca == nil {
		return errors.New("no certificate or no CA given")
	}
	if cert.IsCA {
		return errors.New("it is a CA certificate")
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	// Validity is checked too: the cluster's certificates never expire, but
	// a template may set bounds for short-lived certificates.
	if _, err := cert.Verify(x509.VerifyOptions{
		Roots:     roots,
		KeyUsages: []x509.ExtKeyUsage{usage},
	}); err != nil {
		return err
	}
	return nil
}

// certificateKey returns cert's public key, which must be ed25519 like all
// keys in a cluster.
func certificateKey(cert *x509.Certificate) (ed25519.PublicKey, error) {
	pub, ok := cert.PublicKey.(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("it has a %T public key, not ed25519", cert.PublicKey)
	}
	return pub, nil
}
