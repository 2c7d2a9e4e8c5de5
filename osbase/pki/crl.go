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
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

var errNoCRL = errors.New("no CRL stored; only managed CAs with the CRLSign key usage have one")

// Revoke adds cert, which must have been issued by the CA c, to c's CRL and
// re-signs the CRL with the next CRL number. Revoking a certificate twice is
// not an error. Concurrent revocations, from any number of etcd clients, all
// end up in the CRL.
func (c *Certificate) Revoke(ctx context.Context, kv clientv3.KV, cert *x509.Certificate) error {
	if cert == nil {
		return fmt.Errorf("revoking with CA %q: no certificate given", c.Name)
	}
	if err := c.revoke(ctx, kv, cert); err != nil {
		return fmt.Errorf("revoking certificate %x with CA %q: %w", cert.SerialNumber, c.Name, err)
	}
	return nil
}

func (c *Certificate) revoke(ctx context.Context, kv clientv3.KV, cert *x509.Certificate) error {
	if _, err := c.Ensure(ctx, kv); err != nil {
		return err
	}
	ca, key := c.loaded()
	if key == nil {
		return errors.New("CA is external and cannot sign a CRL")
	}
	if err := cert.CheckSignatureFrom(ca); err != nil {
		return fmt.Errorf("certificate was not issued by this CA: %w", err)
	}
	crlKey := c.Namespace.crlKey(c.Name)
	for {
		res, err := kv.Get(ctx, crlKey)
		if err != nil {
			return fmt.Errorf("reading CRL from etcd: %w", err)
		}
		if len(res.Kvs) == 0 {
			return errNoCRL
		}
		crl, err := parseCRL(res.Kvs[0].Value, ca)
		if err != nil {
			return err
		}
		if IsRevoked(crl, cert) {
			return nil
		}

		entries := make([]x509.RevocationListEntry, 0, len(crl.RevokedCertificateEntries)+1)
		for _, e := range crl.RevokedCertificateEntries {
			// Only what CreateRevocationList reads: the parsed entries also
			// carry their encoded form and extensions, which it would reject.
			entries = append(entries, x509.RevocationListEntry{
				SerialNumber:   e.SerialNumber,
				RevocationTime: e.RevocationTime,
				ReasonCode:     e.ReasonCode,
			})
		}
		entries = append(entries, x509.RevocationListEntry{
			SerialNumber:   cert.SerialNumber,
			RevocationTime: time.Now(),
		})
		number := new(big.Int).Add(crl.Number, big.NewInt(1))
		der, err := signCRL(ca, key, number, entries)
		if err != nil {
			return fmt.Errorf("signing CRL: %w", err)
		}

		// Only replace the CRL that this one was built from, so that a
		// concurrent revocation is never overwritten; retry on top of it
		// instead.
		txn, err := kv.Txn(ctx).
			If(clientv3.Compare(clientv3.ModRevision(crlKey), "=", res.Kvs[0].ModRevision)).
			Then(clientv3.OpPut(crlKey, string(der))).
			Commit()
		if err != nil {
			return fmt.Errorf("storing CRL in etcd: %w", err)
		}
		if txn.Succeeded {
			return nil
		}
	}
}

// CRL returns the current revocation list of the CA c, after checking that
// c signed it.
func (c *Certificate) CRL(ctx context.Context, kv clientv3.KV) (*x509.RevocationList, error) {
	crl, err := c.readCRL(ctx, kv)
	if err != nil {
		return nil, fmt.Errorf("reading CRL of CA %q: %w", c.Name, err)
	}
	return crl, nil
}

func (c *Certificate) readCRL(ctx context.Context, kv clientv3.KV) (*x509.RevocationList, error) {
	if _, err := c.Ensure(ctx, kv); err != nil {
		return nil, err
	}
	ca, _ := c.loaded()
	res, err := kv.Get(ctx, c.Namespace.crlKey(c.Name))
	if err != nil {
		return nil, fmt.Errorf("reading from etcd: %w", err)
	}
	if len(res.Kvs) == 0 {
		return nil, errNoCRL
	}
	return parseCRL(res.Kvs[0].Value, ca)
}

// IsRevoked reports whether crl lists cert. Only certificates issued by the
// CA that signed crl can be listed in it.
func IsRevoked(crl *x509.RevocationList, cert *x509.Certificate) bool {
	if !bytes.Equal(crl.RawIssuer, cert.RawIssuer) {
		return false
	}
	for _, e := range crl.RevokedCertificateEntries {
		if e.SerialNumber.Cmp(cert.SerialNumber) == 0 {
			return true
		}
	}
	return false
}

// RejectRevoked returns a function for tls.Config.VerifyPeerCertificate that
// fails the handshake if any certificate in the verified chains is listed in
// crl. It fails closed if the chains were not verified, because without
// verification there is nothing to trust the certificates' serials.
func RejectRevoked(crl *x509.RevocationList) func(rawCerts [][]byte, verifiedChains [][]*x509.Certificate) error {
	return func(_ [][]byte, verifiedChains [][]*x509.Certificate) error {
		if len(verifiedChains) == 0 {
			return errors.New("pki: no verified certificate chains to check for revocation")
		}
		for _, chain := range verifiedChains {
			for _, cert := range chain {
				if IsRevoked(crl, cert) {
					return fmt.Errorf("pki: certificate %x (%s) is revoked", cert.SerialNumber, cert.Subject)
				}
			}
		}
		return nil
	}
}

// signCRL creates a CRL of ca. Its users follow changes through etcd rather
// than fetching it periodically, so its next update is as far off as the
// expiry of certificates.
func signCRL(ca *x509.Certificate, key ed25519.PrivateKey, number *big.Int, entries []x509.RevocationListEntry) ([]byte, error) {
	return x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
		Number:                    number,
		ThisUpdate:                time.Now(),
		NextUpdate:                unlimitedNotAfter,
		RevokedCertificateEntries: entries,
	}, ca, key)
}

// parseCRL parses a DER-encoded CRL and checks that ca signed it.
func parseCRL(der []byte, ca *x509.Certificate) (*x509.RevocationList, error) {
	crl, err := x509.ParseRevocationList(der)
	if err != nil {
		return nil, fmt.Errorf("parsing CRL: %w", err)
	}
	if err := crl.CheckSignatureFrom(ca); err != nil {
		return nil, fmt.Errorf("checking CRL signature: %w", err)
	}
	return crl, nil
}
