package tpm

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"slices"

	"github.com/google/go-tpm/tpm2"
)

// The format of a sealed blob, version 1. All integers are big-endian, like
// the TPM structures inside.
//
//	magic        8 bytes  "TPM2SEAL"
//	version      2 bytes  1
//	pcrMask      4 bytes  bit i set: sealed to PCR i (0-23), SHA-256 bank
//	pcrValues    32 bytes per PCR of pcrMask, by ascending index: the
//	                      values at sealing, for error messages
//	srkName      2+n      the Name of the SRK the object was created under
//	public       2+n      TPMT_PUBLIC of the sealed object
//	private      2+n      TPM2B_PRIVATE contents of the sealed object
//	nonce        12 bytes AES-GCM nonce
//	ciphertext   rest     the data, encrypted with the sealed key, and the
//	                      GCM tag; the additional data is everything before
//	                      the nonce
//
// The PCR values are not trusted: the sealed object's policy, which the TPM
// enforces, is computed from them, so a blob whose values were changed
// fails to parse (or the object fails to load, if the policy was changed
// too).
const (
	blobMagic   = "TPM2SEAL"
	blobVersion = 1

	// numPCRs is the number of PCRs of a PC client TPM.
	numPCRs = 24
	// pcrSize is the size of a SHA-256 PCR value.
	pcrSize = sha256.Size
	// nonceSize and tagSize are AES-GCM's standard nonce and tag sizes.
	nonceSize = 12
	tagSize   = 16
	// maxTPM2B bounds the TPM structures in a blob. A sealed object's
	// public and private parts take about a hundred bytes each.
	maxTPM2B = 1024
)

// MaxDataSize is the most data Seal accepts.
const MaxDataSize = 64 << 10

// sealedBlob is a parsed blob.
type sealedBlob struct {
	// pcrs are the PCR indices, ascending, and values their values at
	// sealing.
	pcrs    []int
	values  [][]byte
	srkName []byte
	// public is the raw TPMT_PUBLIC, pub its parsed form.
	public     []byte
	pub        *tpm2.TPMTPublic
	private    []byte
	nonce      []byte
	ciphertext []byte
}

// header returns the bytes the GCM tag authenticates: everything before
// the nonce.
func (b *sealedBlob) header() []byte {
	var buf bytes.Buffer
	buf.WriteString(blobMagic)
	binary.Write(&buf, binary.BigEndian, uint16(blobVersion))
	binary.Write(&buf, binary.BigEndian, pcrMask(b.pcrs))
	for _, v := range b.values {
		buf.Write(v)
	}
	for _, f := range [][]byte{b.srkName, b.public, b.private} {
		binary.Write(&buf, binary.BigEndian, uint16(len(f)))
		buf.Write(f)
	}
	return buf.Bytes()
}

// marshal returns the blob in its on-disk form.
func (b *sealedBlob) marshal() []byte {
	return slices.Concat(b.header(), b.nonce, b.ciphertext)
}

// pcrMask returns the bitmap of a set of PCR indices, each below numPCRs.
func pcrMask(pcrs []int) uint32 {
	var m uint32
	for _, i := range pcrs {
		m |= 1 << i
	}
	return m
}

// blobReader reads the fields of a blob, remembering the first error.
type blobReader struct {
	b   []byte
	err error
}

func (r *blobReader) fail(format string, args ...any) {
	if r.err == nil {
		r.err = fmt.Errorf(format, args...)
	}
}

func (r *blobReader) bytes(n int, what string) []byte {
	if r.err != nil {
		return nil
	}
	if n > len(r.b) {
		r.fail("the blob ends within the %s", what)
		return nil
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v
}

func (r *blobReader) uint16(what string) uint16 {
	v := r.bytes(2, what)
	if v == nil {
		return 0
	}
	return binary.BigEndian.Uint16(v)
}

// sized reads a 2-byte length and that many bytes, at least 1 and at most
// maxTPM2B.
func (r *blobReader) sized(what string) []byte {
	n := int(r.uint16(what + " size"))
	if r.err == nil && (n == 0 || n > maxTPM2B) {
		r.fail("the %s has %d bytes, not 1 to %d", what, n, maxTPM2B)
		return nil
	}
	return r.bytes(n, what)
}

// parseBlob parses a blob, which may hold anything. The error matches
// ErrInvalidBlob.
func parseBlob(data []byte) (*sealedBlob, error) {
	b, err := parseBlobFields(data)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidBlob, err)
	}
	return b, nil
}

func parseBlobFields(data []byte) (*sealedBlob, error) {
	r := &blobReader{b: data}
	if magic := r.bytes(len(blobMagic), "magic"); r.err == nil && string(magic) != blobMagic {
		return nil, errors.New("it does not start with " + blobMagic)
	}
	if v := r.uint16("version"); r.err == nil && v != blobVersion {
		return nil, fmt.Errorf("its format version is %d; this code reads version %d", v, blobVersion)
	}
	maskBytes := r.bytes(4, "PCR selection")
	if r.err != nil {
		return nil, r.err
	}
	mask := binary.BigEndian.Uint32(maskBytes)
	if mask == 0 || mask>>numPCRs != 0 {
		return nil, fmt.Errorf("its PCR selection %#x selects none of PCRs 0-%d, or others", mask, numPCRs-1)
	}
	b := &sealedBlob{}
	for i := range numPCRs {
		if mask&(1<<i) != 0 {
			b.pcrs = append(b.pcrs, i)
		}
	}
	for range bits.OnesCount32(mask) {
		b.values = append(b.values, r.bytes(pcrSize, "PCR values"))
	}
	b.srkName = r.sized("SRK name")
	b.public = r.sized("sealed object's public area")
	b.private = r.sized("sealed object's private area")
	b.nonce = r.bytes(nonceSize, "nonce")
	if r.err != nil {
		return nil, r.err
	}
	if len(r.b) < tagSize || len(r.b) > MaxDataSize+tagSize {
		return nil, fmt.Errorf("its ciphertext has %d bytes, not %d to %d", len(r.b), tagSize, MaxDataSize+tagSize)
	}
	b.ciphertext = r.b

	pub, err := tpm2.Unmarshal[tpm2.TPMTPublic](b.public)
	if err != nil {
		return nil, fmt.Errorf("its sealed object's public area: %w", err)
	}
	if !bytes.Equal(tpm2.Marshal(pub), b.public) {
		return nil, errors.New("its sealed object's public area has trailing bytes")
	}
	if pub.Type != tpm2.TPMAlgKeyedHash || pub.NameAlg != tpm2.TPMAlgSHA256 {
		return nil, fmt.Errorf("its object is of type %#x with name algorithm %#x, not a sealed data object (%#x) named with SHA-256 (%#x)", pub.Type, pub.NameAlg, tpm2.TPMAlgKeyedHash, tpm2.TPMAlgSHA256)
	}
	policy, err := pcrPolicy(b.pcrs, b.values)
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(pub.AuthPolicy.Buffer, policy) {
		return nil, errors.New("its object's policy does not match its PCR values")
	}
	b.pub = pub
	return b, nil
}

// pcrSelection returns the TPM structure selecting pcrs of the SHA-256
// bank.
func pcrSelection(pcrs []int) tpm2.TPMLPCRSelection {
	idx := make([]uint, len(pcrs))
	for i, p := range pcrs {
		idx[i] = uint(p)
	}
	return tpm2.TPMLPCRSelection{PCRSelections: []tpm2.TPMSPCRSelection{{
		Hash:      tpm2.TPMAlgSHA256,
		PCRSelect: tpm2.PCClientCompatible.PCRs(idx...),
	}}}
}

// pcrPolicy returns the policy digest of TPM2_PolicyPCR over pcrs having
// the given values (by ascending index), in a fresh SHA-256 policy session:
// what the TPM computes in a session that runs PolicyPCR while the PCRs
// have those values.
func pcrPolicy(pcrs []int, values [][]byte) ([]byte, error) {
	h := sha256.New()
	for _, v := range values {
		h.Write(v)
	}
	calc, err := tpm2.NewPolicyCalculator(tpm2.TPMAlgSHA256)
	if err != nil {
		return nil, err
	}
	cmd := tpm2.PolicyPCR{PcrDigest: tpm2.TPM2BDigest{Buffer: h.Sum(nil)}, Pcrs: pcrSelection(pcrs)}
	if err := cmd.Update(calc); err != nil {
		return nil, err
	}
	return calc.Hash().Digest, nil
}
