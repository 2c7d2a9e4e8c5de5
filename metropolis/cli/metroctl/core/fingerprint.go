package core

import (
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"strings"
)

// fingerprintPrefix names the hash of a fingerprint, as in SSH.
const fingerprintPrefix = "SHA256:"

// Fingerprint returns the fingerprint operators compare to decide whether to
// trust a certificate: "SHA256:" and the hex SHA-256 of the certificate's
// DER encoding. The same value is shown on a node's console.
func Fingerprint(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.Raw)
	return fingerprintPrefix + hex.EncodeToString(sum[:])
}

// ParseFingerprint parses a certificate fingerprint as an operator may copy
// it: in hex, in any case, with or without the "SHA256:" prefix and with or
// without colons between bytes. It returns the digest.
func ParseFingerprint(s string) ([]byte, error) {
	h := strings.TrimSpace(s)
	if len(h) >= len(fingerprintPrefix) && strings.EqualFold(h[:len(fingerprintPrefix)], fingerprintPrefix) {
		h = h[len(fingerprintPrefix):]
	}
	h = strings.ReplaceAll(h, ":", "")
	digest, err := hex.DecodeString(h)
	if err != nil || len(digest) != sha256.Size {
		return nil, fmt.Errorf("fingerprint %q is not a SHA-256 digest in hex (%d hex digits, optionally prefixed with %q)", s, 2*sha256.Size, fingerprintPrefix)
	}
	return digest, nil
}

// matchesFingerprint reports whether digest is the fingerprint of cert.
func matchesFingerprint(cert *x509.Certificate, digest []byte) bool {
	sum := sha256.Sum256(cert.Raw)
	return subtle.ConstantTimeCompare(sum[:], digest) == 1
}
