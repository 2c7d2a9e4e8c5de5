package pki

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"net"
	"time"
)

// Validity bounds for templates that leave them unset. The package
// documentation explains why certificates do not expire.
var (
	unlimitedNotBefore = time.Unix(0, 0).UTC()
	unlimitedNotAfter  = time.Date(9999, time.December, 31, 23, 59, 59, 0, time.UTC)
)

// CA returns a template for a certificate authority that may issue
// certificates and sign revocation lists.
func CA(commonName string) x509.Certificate {
	return x509.Certificate{
		Subject:               pkix.Name{CommonName: commonName},
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
}

// Server returns a template for a TLS server reachable under the given DNS
// names and IP addresses. The subject stays empty: TLS clients match only the
// subject alternative names.
func Server(dnsNames []string, ips []net.IP) x509.Certificate {
	return x509.Certificate{
		DNSNames:    dnsNames,
		IPAddresses: ips,
		// ed25519 keys only sign, they never encipher keys.
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
}

// Client returns a template for a TLS client that authenticates as identity,
// which becomes the subject's common name.
func Client(identity string) x509.Certificate {
	return x509.Certificate{
		Subject:     pkix.Name{CommonName: identity},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
}
