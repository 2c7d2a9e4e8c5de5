// Package pkitest makes certificates for tests that need one standing for
// something that does not exist, such as the CA of another cluster.
package pkitest

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"math/big"
	"testing"
	"time"

	"metropolis.dev/osbase/pki"
)

// CA returns a new self-signed CA certificate named commonName, valid from
// an hour ago to an hour from now, whose key is thrown away.
func CA(t testing.TB, commonName string) *x509.Certificate {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	template := pki.CA(commonName)
	template.SerialNumber = big.NewInt(1)
	template.NotBefore = time.Now().Add(-time.Hour)
	template.NotAfter = time.Now().Add(time.Hour)
	der, err := x509.CreateCertificate(rand.Reader, &template, &template, pub, priv)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return ca
}
