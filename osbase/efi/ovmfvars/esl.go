package ovmfvars

import (
	"errors"
	"fmt"
)

// CertX509GUID (EFI_CERT_X509_GUID) is the type of signature lists whose
// entries are DER X.509 certificates.
var CertX509GUID = MustParseGUID("a5c059a1-94e4-4aa7-87b5-ab155c2bf072")

// eslHeaderSize is the size of an EFI_SIGNATURE_LIST's header: type GUID,
// list size, signature header size and signature size. Each entry
// (EFI_SIGNATURE_DATA) starts with its owner's GUID.
const eslHeaderSize = 16 + 4 + 4 + 4

// A SignatureList is a parsed EFI_SIGNATURE_LIST.
type SignatureList struct {
	// Type says what the entries are, such as CertX509GUID.
	Type GUID
	// Header is the list's type-specific header, usually empty.
	Header []byte
	// Signatures are the entries, all of the same size.
	Signatures []Signature
}

// A Signature is an EFI_SIGNATURE_DATA: a certificate or hash and its
// owner.
type Signature struct {
	Owner GUID
	Data  []byte
}

// ParseSignatureLists parses the value of a key variable: one or more
// EFI_SIGNATURE_LISTs, back to back, each with at least one entry.
func ParseSignatureLists(b []byte) ([]SignatureList, error) {
	var lists []SignatureList
	for off := 0; off < len(b); {
		rest := b[off:]
		if len(rest) < eslHeaderSize {
			return nil, fmt.Errorf("signature list at offset %d: %d bytes is too short for a header", off, len(rest))
		}
		listSize := uint64(le.Uint32(rest[16:]))
		headerSize := uint64(le.Uint32(rest[20:]))
		sigSize := uint64(le.Uint32(rest[24:]))
		if listSize > uint64(len(rest)) || listSize < eslHeaderSize+headerSize {
			return nil, fmt.Errorf("signature list at offset %d: size %d does not fit the %d bytes left and its %d-byte header", off, listSize, len(rest), headerSize)
		}
		entries := listSize - eslHeaderSize - headerSize
		if sigSize <= 16 || entries == 0 || entries%sigSize != 0 {
			return nil, fmt.Errorf("signature list at offset %d: %d bytes of entries are not a positive multiple of the entry size %d, which must exceed the 16-byte owner", off, entries, sigSize)
		}
		l := SignatureList{Type: GUID(rest), Header: rest[eslHeaderSize : eslHeaderSize+headerSize]}
		for e := eslHeaderSize + headerSize; e < listSize; e += sigSize {
			l.Signatures = append(l.Signatures, Signature{Owner: GUID(rest[e:]), Data: rest[e+16 : e+sigSize]})
		}
		lists = append(lists, l)
		off += int(listSize)
	}
	if len(lists) == 0 {
		return nil, errors.New("empty, want at least one signature list")
	}
	return lists, nil
}
