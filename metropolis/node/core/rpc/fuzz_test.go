package rpc

import (
	"crypto/ed25519"
	"crypto/x509"
	"math/big"
	"testing"
	"time"

	"metropolis.dev/metropolis/node/core/identity"
)

// signedCA is a cluster CA that signs directly, without etcd, so that fuzz
// workers start quickly.
type signedCA struct {
	cert *x509.Certificate
	key  ed25519.PrivateKey
}

func newSignedCA(t testing.TB) *signedCA {
	t.Helper()
	pub, key, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	ca := &signedCA{key: key}
	ca.cert = ca.sign(t, identity.CACertificate(), pub, nil)
	return ca
}

// sign issues template for pub, signed by the CA or, if parent is nil,
// self-signed by the CA's key.
func (ca *signedCA) sign(t testing.TB, template x509.Certificate, pub ed25519.PublicKey, parent *x509.Certificate) *x509.Certificate {
	t.Helper()
	template.SerialNumber = big.NewInt(time.Now().UnixNano())
	template.NotBefore = time.Unix(0, 0)
	template.NotAfter = time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC)
	if parent == nil {
		parent = &template
	}
	der, err := x509.CreateCertificate(nil, &template, parent, pub, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

// node returns credentials of a new node of the CA's cluster.
func (ca *signedCA) node(t testing.TB) *identity.NodeCredentials {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	creds, err := identity.NewNodeCredentials(priv, ca.sign(t, identity.NodeCertificate(pub), pub, ca.cert).Raw, ca.cert.Raw)
	if err != nil {
		t.Fatal(err)
	}
	return creds
}

// FuzzIdentifyPeer feeds arbitrary client certificates to the server's
// authentication, which sees whatever anybody connecting presents.
func FuzzIdentifyPeer(f *testing.F) {
	cluster, other := newSignedCA(f), newSignedCA(f)
	userPub, _, err := ed25519.GenerateKey(nil)
	if err != nil {
		f.Fatal(err)
	}
	_, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		f.Fatal(err)
	}
	selfSigned, err := selfSignedCertificate(priv)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(cluster.node(f).Certificate().Raw)
	f.Add(cluster.sign(f, identity.UserCertificate("owner"), userPub, cluster.cert).Raw)
	f.Add(other.node(f).Certificate().Raw)
	f.Add(selfSigned.Certificate[0])
	f.Add(cluster.cert.Raw)

	srv := &server{security: &ServerSecurity{NodeCredentials: cluster.node(f)}}
	f.Fuzz(func(t *testing.T, der []byte) {
		cert, err := x509.ParseCertificate(der)
		if err != nil {
			return
		}
		certs := []*x509.Certificate{cert}
		if pi, err := srv.identify(certs); err == nil {
			if (pi.Node == nil) == (pi.User == nil) {
				t.Fatalf("identified as %s, want exactly one of node and user", pi)
			}
			if cert.CheckSignatureFrom(cluster.cert) != nil {
				t.Fatalf("identified %s by a certificate the cluster CA did not sign", pi)
			}
		}
		if key := selfSignedKey(certs); key != nil {
			if !key.Equal(cert.PublicKey) {
				t.Fatal("self-signed key is not the certificate's key")
			}
			if cert.CheckSignature(cert.SignatureAlgorithm, cert.RawTBSCertificate, cert.Signature) != nil {
				t.Fatal("certificate is taken as self-signed but its own key did not sign it")
			}
		}
	})
}
