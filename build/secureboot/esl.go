package secureboot

import (
	"crypto/x509"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"strings"
)

// GUID is a GUID in the byte order of UEFI (and Microsoft): the first three fields
// little-endian, the rest as written.
type GUID [16]byte

// parseGUID parses a GUID written as xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx.
func parseGUID(s string) (GUID, error) {
	var g GUID
	parts := strings.Split(s, "-")
	if len(parts) != 5 || len(parts[0]) != 8 || len(parts[1]) != 4 || len(parts[2]) != 4 || len(parts[3]) != 4 || len(parts[4]) != 12 {
		return g, fmt.Errorf("GUID %q: want the form xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx", s)
	}
	b, err := hex.DecodeString(strings.Join(parts, ""))
	if err != nil {
		return g, fmt.Errorf("GUID %q: %w", s, err)
	}
	binary.LittleEndian.PutUint32(g[0:], binary.BigEndian.Uint32(b[0:]))
	binary.LittleEndian.PutUint16(g[4:], binary.BigEndian.Uint16(b[4:]))
	binary.LittleEndian.PutUint16(g[6:], binary.BigEndian.Uint16(b[6:]))
	copy(g[8:], b[8:])
	return g, nil
}

func mustParseGUID(s string) GUID {
	g, err := parseGUID(s)
	if err != nil {
		panic(err)
	}
	return g
}

var (
	// certX509GUID is EFI_CERT_X509_GUID, the type of signature list
	// entries that are DER X.509 certificates (UEFI specification,
	// section 32.4.1).
	certX509GUID = mustParseGUID("a5c059a1-94e4-4aa7-87b5-ab155c2bf072")
	// ownerGUID identifies Metropolis as the owner of the signature list
	// entries it writes. Firmware only stores it; it lets tools that list
	// the enrolled keys tell who enrolled which.
	ownerGUID = mustParseGUID(ownerGUIDString)
)

const ownerGUIDString = "128a91bd-2ab8-4314-b6f6-10e174129ff0"

// Sizes of the EFI_SIGNATURE_LIST header and the owner GUID of each entry.
const (
	signatureListHeaderSize = 16 + 4 + 4 + 4
	signatureOwnerSize      = 16
)

// SignatureList returns an EFI_SIGNATURE_LIST holding the certificate, owned
// by Metropolis, the form in which UEFI firmware takes keys into its PK, KEK
// and db variables (UEFI specification, section 32.4.1).
func SignatureList(cert *x509.Certificate) []byte {
	entrySize := signatureOwnerSize + len(cert.Raw)
	b := make([]byte, 0, signatureListHeaderSize+entrySize)
	b = append(b, certX509GUID[:]...)
	b = binary.LittleEndian.AppendUint32(b, uint32(signatureListHeaderSize+entrySize)) // SignatureListSize
	b = binary.LittleEndian.AppendUint32(b, 0)                                         // SignatureHeaderSize
	b = binary.LittleEndian.AppendUint32(b, uint32(entrySize))                         // SignatureSize
	b = append(b, ownerGUID[:]...)
	return append(b, cert.Raw...)
}
