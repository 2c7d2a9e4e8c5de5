package secureboot

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509/pkix"
	"encoding/asn1"
	"fmt"
	"math/big"
	"slices"
	"unicode/utf16"
)

// Object identifiers of PKCS #7 (RFC 2315) and Authenticode (Microsoft,
// "Windows Authenticode Portable Executable Signature Format").
var (
	oidSignedData      = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 2}
	oidContentType     = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 3}
	oidMessageDigest   = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 4}
	oidRSAEncryption   = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 1}
	oidSHA256          = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 1}
	oidSpcIndirectData = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 311, 2, 1, 4}
	oidSpcPEImageData  = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 311, 2, 1, 15}
	algorithmSHA256    = pkix.AlgorithmIdentifier{Algorithm: oidSHA256, Parameters: asn1.NullRawValue}
	algorithmRSA       = pkix.AlgorithmIdentifier{Algorithm: oidRSAEncryption, Parameters: asn1.NullRawValue}
)

// obsoleteLink is the file name Authenticode signatures of PE images link
// to by convention.
const obsoleteLink = "<<<Obsolete>>>"

// contentInfo is a ContentInfo whose content is built with explicit0:
// encoding/asn1 does not wrap a RawValue in an explicit tag itself.
type contentInfo struct {
	ContentType asn1.ObjectIdentifier
	Content     asn1.RawValue
}

// explicit0 wraps a DER encoding in an explicit [0] tag.
func explicit0(der []byte) asn1.RawValue {
	return asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: der}
}

type signedData struct {
	Version          int
	DigestAlgorithms []pkix.AlgorithmIdentifier `asn1:"set"`
	ContentInfo      contentInfo
	// Certificates is [0] IMPLICIT SET OF Certificate.
	Certificates asn1.RawValue
	SignerInfos  []signerInfo `asn1:"set"`
}

type signerInfo struct {
	Version               int
	IssuerAndSerialNumber issuerAndSerialNumber
	DigestAlgorithm       pkix.AlgorithmIdentifier
	// AuthenticatedAttributes is [0] IMPLICIT SET OF Attribute.
	AuthenticatedAttributes   asn1.RawValue
	DigestEncryptionAlgorithm pkix.AlgorithmIdentifier
	EncryptedDigest           []byte
}

type issuerAndSerialNumber struct {
	Issuer       asn1.RawValue
	SerialNumber *big.Int
}

type attribute struct {
	Type   asn1.ObjectIdentifier
	Values []asn1.RawValue `asn1:"set"`
}

// spcIndirectDataContent is what an Authenticode signature signs: the hash
// of the image.
type spcIndirectDataContent struct {
	Data          spcAttributeTypeAndOptionalValue
	MessageDigest digestInfo
}

type spcAttributeTypeAndOptionalValue struct {
	Type  asn1.ObjectIdentifier
	Value spcPEImageData
}

// spcPEImageData has no meaning for UEFI; it is filled in as Microsoft's
// tools and sbsign do: no flags, and a file link to "<<<Obsolete>>>".
type spcPEImageData struct {
	Flags asn1.BitString
	// File is [0] EXPLICIT SpcLink.
	File asn1.RawValue
}

type digestInfo struct {
	DigestAlgorithm pkix.AlgorithmIdentifier
	Digest          []byte
}

// authenticodeSignature returns the PKCS #7 SignedData that signs an
// image's Authenticode hash with key. It has the structure sbsign writes,
// without sbsign's signing time and S/MIME capabilities attributes: only
// the content type and message digest that PKCS #7 requires, so that the
// result depends on nothing but the hash and the key.
func authenticodeSignature(imageHash []byte, key *Key) ([]byte, error) {
	content, err := indirectDataContent(imageHash)
	if err != nil {
		return nil, err
	}
	// PKCS #7 digests the contents octets of the content, without its
	// tag and length (RFC 2315, section 9.3).
	var raw asn1.RawValue
	if _, err := asn1.Unmarshal(content, &raw); err != nil {
		return nil, err
	}
	contentDigest := sha256.Sum256(raw.Bytes)
	attrs, err := authenticatedAttributes(contentDigest[:])
	if err != nil {
		return nil, err
	}
	// The signature covers the attributes encoded as a SET OF, not with
	// the [0] tag they carry in the SignerInfo.
	signedAttrs, err := asn1.Marshal(asn1.RawValue{Class: asn1.ClassUniversal, Tag: asn1.TagSet, IsCompound: true, Bytes: attrs})
	if err != nil {
		return nil, err
	}
	attrsDigest := sha256.Sum256(signedAttrs)
	// PKCS #1 v1.5 signatures do not use the random source; it is passed
	// only because the crypto.Signer interface takes one.
	signature, err := key.Signer.Sign(rand.Reader, attrsDigest[:], crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("signing: %w", err)
	}

	cert := key.Certificate
	sd, err := asn1.Marshal(signedData{
		Version:          1,
		DigestAlgorithms: []pkix.AlgorithmIdentifier{algorithmSHA256},
		ContentInfo:      contentInfo{ContentType: oidSpcIndirectData, Content: explicit0(content)},
		Certificates:     asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: cert.Raw},
		SignerInfos: []signerInfo{{
			Version:                   1,
			IssuerAndSerialNumber:     issuerAndSerialNumber{Issuer: asn1.RawValue{FullBytes: cert.RawIssuer}, SerialNumber: cert.SerialNumber},
			DigestAlgorithm:           algorithmSHA256,
			AuthenticatedAttributes:   asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: attrs},
			DigestEncryptionAlgorithm: algorithmRSA,
			EncryptedDigest:           signature,
		}},
	})
	if err != nil {
		return nil, fmt.Errorf("encoding signed data: %w", err)
	}
	return asn1.Marshal(contentInfo{ContentType: oidSignedData, Content: explicit0(sd)})
}

// indirectDataContent encodes the SpcIndirectDataContent for an image hash.
func indirectDataContent(imageHash []byte) ([]byte, error) {
	// SpcLink file [2] EXPLICIT SpcString, SpcString unicode [0] IMPLICIT
	// BMPString (UTF-16BE).
	var name bytes.Buffer
	for _, u := range utf16.Encode([]rune(obsoleteLink)) {
		name.Write([]byte{byte(u >> 8), byte(u)})
	}
	unicode, err := asn1.Marshal(asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, Bytes: name.Bytes()})
	if err != nil {
		return nil, err
	}
	file, err := asn1.Marshal(asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 2, IsCompound: true, Bytes: unicode})
	if err != nil {
		return nil, err
	}
	return asn1.Marshal(spcIndirectDataContent{
		Data: spcAttributeTypeAndOptionalValue{
			Type:  oidSpcPEImageData,
			Value: spcPEImageData{File: explicit0(file)},
		},
		MessageDigest: digestInfo{DigestAlgorithm: algorithmSHA256, Digest: imageHash},
	})
}

// authenticatedAttributes returns the DER encodings of the content type and
// message digest attributes, in the order DER requires for a SET OF: sorted
// by their encodings.
func authenticatedAttributes(contentDigest []byte) ([]byte, error) {
	contentType, err := asn1.Marshal(oidSpcIndirectData)
	if err != nil {
		return nil, err
	}
	digest, err := asn1.Marshal(contentDigest)
	if err != nil {
		return nil, err
	}
	var encoded [][]byte
	for _, a := range []attribute{
		{Type: oidContentType, Values: []asn1.RawValue{{FullBytes: contentType}}},
		{Type: oidMessageDigest, Values: []asn1.RawValue{{FullBytes: digest}}},
	} {
		b, err := asn1.Marshal(a)
		if err != nil {
			return nil, err
		}
		encoded = append(encoded, b)
	}
	slices.SortFunc(encoded, bytes.Compare)
	return bytes.Join(encoded, nil), nil
}
