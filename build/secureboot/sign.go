package secureboot

import (
	"crypto/rsa"
	"crypto/sha256"
	"encoding/binary"
	"fmt"

	"metropolis.dev/build/uki/pefile"
)

// WIN_CERTIFICATE header fields for a PKCS #7 signature (PE/COFF
// specification, "The Attribute Certificate Table").
const (
	winCertificateHeaderSize     = 8
	winCertificateRevision       = 0x0200
	winCertificateTypePKCSSigned = 0x0002
	winCertificateAlignment      = 8
)

// Sign returns a copy of an unsigned PE32+ image, such as a UKI, with an
// Authenticode signature by key. The same image and key always give the
// same bytes.
func Sign(image []byte, key *Key) ([]byte, error) {
	if _, ok := key.Signer.Public().(*rsa.PublicKey); !ok {
		return nil, fmt.Errorf("signing with a %T key: UEFI firmware verifies only RSA signatures", key.Signer.Public())
	}
	img, err := pefile.Parse(image)
	if err != nil {
		return nil, fmt.Errorf("signing: %w", err)
	}
	// The signature covers the padding before the certificate table.
	if err := img.PadForCertificateTable(); err != nil {
		return nil, fmt.Errorf("signing: %w", err)
	}
	hash := authenticodeHash(img.Bytes(), img)
	signature, err := authenticodeSignature(hash, key)
	if err != nil {
		return nil, err
	}
	if err := img.AppendCertificateTable(winCertificate(signature)); err != nil {
		return nil, fmt.Errorf("signing: %w", err)
	}
	return img.Bytes(), nil
}

// authenticodeHash returns the SHA-256 Authenticode hash of an unsigned
// image: the hash of its headers, sections and trailing data, leaving out
// the checksum and the certificate table's directory entry, which signing
// changes. pefile guarantees that the sections follow the headers in file
// order without gaps, so this is the hash of the file's bytes in order.
func authenticodeHash(data []byte, img *pefile.Image) []byte {
	checksum, certEntry := img.ChecksumOffset(), img.CertificateTableEntryOffset()
	h := sha256.New()
	h.Write(data[:checksum])
	h.Write(data[checksum+4 : certEntry])
	h.Write(data[certEntry+8:])
	return h.Sum(nil)
}

// winCertificate wraps a PKCS #7 signature into a WIN_CERTIFICATE, padded
// to the alignment of the certificate table. Its length field does not
// count the padding.
func winCertificate(signature []byte) []byte {
	b := make([]byte, 0, winCertificateHeaderSize+len(signature)+winCertificateAlignment)
	b = binary.LittleEndian.AppendUint32(b, uint32(winCertificateHeaderSize+len(signature)))
	b = binary.LittleEndian.AppendUint16(b, winCertificateRevision)
	b = binary.LittleEndian.AppendUint16(b, winCertificateTypePKCSSigned)
	b = append(b, signature...)
	for len(b)%winCertificateAlignment != 0 {
		b = append(b, 0)
	}
	return b
}
