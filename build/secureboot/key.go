package secureboot

import (
	"crypto"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
)

// minRSABits is the smallest RSA key Sign accepts, the size UEFI firmware
// must support.
const minRSABits = 2048

// A Key signs images: an RSA private key (LoadKey and EnsureDevKey check
// that it is one) and the certificate that firmware trusts it by.
type Key struct {
	Signer      crypto.Signer
	Certificate *x509.Certificate
}

// LoadKey reads a key from a PEM file holding a PKCS #8 or PKCS #1 RSA
// private key and its certificate from a PEM file, and checks that they
// belong together.
func LoadKey(keyPath, certPath string) (*Key, error) {
	keyBlock, err := readPEM(keyPath)
	if err != nil {
		return nil, fmt.Errorf("reading signing key: %w", err)
	}
	var priv any
	switch keyBlock.Type {
	case "PRIVATE KEY":
		priv, err = x509.ParsePKCS8PrivateKey(keyBlock.Bytes)
	case "RSA PRIVATE KEY":
		priv, err = x509.ParsePKCS1PrivateKey(keyBlock.Bytes)
	default:
		err = fmt.Errorf("PEM block %q, want PRIVATE KEY or RSA PRIVATE KEY", keyBlock.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("parsing signing key %s: %w", keyPath, err)
	}
	rsaKey, ok := priv.(*rsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("signing key %s is a %T: UEFI firmware verifies only RSA signatures", keyPath, priv)
	}
	if rsaKey.N.BitLen() < minRSABits {
		return nil, fmt.Errorf("signing key %s has %d bits, want at least %d", keyPath, rsaKey.N.BitLen(), minRSABits)
	}

	certBlock, err := readPEM(certPath)
	if err != nil {
		return nil, fmt.Errorf("reading signing certificate: %w", err)
	}
	if certBlock.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("signing certificate %s: PEM block %q, want CERTIFICATE", certPath, certBlock.Type)
	}
	cert, err := x509.ParseCertificate(certBlock.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parsing signing certificate %s: %w", certPath, err)
	}
	if !rsaKey.PublicKey.Equal(cert.PublicKey) {
		return nil, fmt.Errorf("signing key %s does not belong to certificate %s", keyPath, certPath)
	}
	return &Key{Signer: rsaKey, Certificate: cert}, nil
}

// readPEM reads the first PEM block of a file. Errors wrap fs.ErrNotExist
// for a missing file.
func readPEM(path string) (*pem.Block, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(b)
	if block == nil {
		return nil, errors.New(path + " holds no PEM block")
	}
	return block, nil
}
