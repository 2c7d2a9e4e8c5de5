package crypt

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"

	cpb "metropolis.dev/metropolis/proto/common"
)

// The header at the start of a data partition, version 1, little-endian:
//
//	0   8  magic "MTRPDATA"
//	8   2  version, 1
//	10  2  the NodeStorageSecurity the partition was formatted with
//	12  4  zero
//	16  32 key check: HMAC-SHA256 of bytes 0-15 under a key derived from
//	       the data key (purposeKeyCheck); zero for INSECURE
//	48     zero up to headerSize
//
// The rest of the first MiB (payloadOffset) is zero and unused.
const (
	headerMagic   = "MTRPDATA"
	headerVersion = 1
	headerSize    = 512
	checkOffset   = 16
	checkSize     = sha256.Size
	// payloadOffset is where the payload starts, in bytes: after a MiB,
	// so that it stays aligned like the partition.
	payloadOffset = 1 << 20
)

var (
	// ErrNotFormatted means that the partition has no header: it was
	// never formatted by Format, or its header was destroyed.
	ErrNotFormatted = errors.New("crypt: the data partition has no Metropolis header: it was never formatted, or its header was overwritten")
	// ErrWrongKey means that the key given is not the one the partition
	// was formatted with.
	ErrWrongKey = errors.New("crypt: the key does not match the one the data partition was formatted with")
)

// header is a parsed header.
type header struct {
	security cpb.NodeStorageSecurity
	check    [checkSize]byte
}

// keyCheck returns the key check value of a header for security and the
// data key, which must be nil for INSECURE.
func keyCheck(security cpb.NodeStorageSecurity, key []byte) [checkSize]byte {
	var check [checkSize]byte
	if key == nil {
		return check
	}
	mac := hmac.New(sha256.New, deriveKey(key, purposeKeyCheck, sha256.Size))
	mac.Write(headerPrefix(security))
	copy(check[:], mac.Sum(nil))
	return check
}

// headerPrefix returns the bytes the key check covers.
func headerPrefix(security cpb.NodeStorageSecurity) []byte {
	b := make([]byte, checkOffset)
	copy(b, headerMagic)
	binary.LittleEndian.PutUint16(b[8:], headerVersion)
	binary.LittleEndian.PutUint16(b[10:], uint16(security))
	return b
}

// newHeader returns the header of a partition formatted for security with
// key.
func newHeader(security cpb.NodeStorageSecurity, key []byte) *header {
	return &header{security: security, check: keyCheck(security, key)}
}

// marshal returns the header's headerSize bytes.
func (h *header) marshal() []byte {
	b := make([]byte, headerSize)
	copy(b, headerPrefix(h.security))
	copy(b[checkOffset:], h.check[:])
	return b
}

// parseHeader parses the first headerSize bytes of a partition, which may
// hold anything.
func parseHeader(b []byte) (*header, error) {
	if len(b) < headerSize {
		return nil, fmt.Errorf("crypt: header: %d bytes, want %d", len(b), headerSize)
	}
	b = b[:headerSize]
	if string(b[:len(headerMagic)]) != headerMagic {
		return nil, ErrNotFormatted
	}
	if v := binary.LittleEndian.Uint16(b[8:]); v != headerVersion {
		return nil, fmt.Errorf("crypt: the data partition header has version %d; this node reads version %d", v, headerVersion)
	}
	h := &header{security: cpb.NodeStorageSecurity(binary.LittleEndian.Uint16(b[10:]))}
	if err := checkSecurity(h.security); err != nil {
		return nil, fmt.Errorf("crypt: the data partition header: %w", err)
	}
	copy(h.check[:], b[checkOffset:])
	zeros := [headerSize]byte{}
	if !bytes.Equal(b[12:checkOffset], zeros[12:checkOffset]) || !bytes.Equal(b[checkOffset+checkSize:], zeros[checkOffset+checkSize:]) {
		return nil, errors.New("crypt: the data partition header has data in its reserved bytes")
	}
	if h.security == cpb.NodeStorageSecurity_NODE_STORAGE_SECURITY_INSECURE && h.check != ([checkSize]byte{}) {
		return nil, errors.New("crypt: the data partition header is for an unencrypted partition but has a key check value")
	}
	return h, nil
}

// verify checks that the header is for security and key.
func (h *header) verify(security cpb.NodeStorageSecurity, key []byte) error {
	if h.security != security {
		return fmt.Errorf("crypt: the data partition was formatted for %v, not %v", h.security, security)
	}
	want := keyCheck(security, key)
	if !hmac.Equal(h.check[:], want[:]) {
		return ErrWrongKey
	}
	return nil
}

// checkSecurity tells why security is not a mode this package implements.
func checkSecurity(security cpb.NodeStorageSecurity) error {
	switch security {
	case cpb.NodeStorageSecurity_NODE_STORAGE_SECURITY_INSECURE,
		cpb.NodeStorageSecurity_NODE_STORAGE_SECURITY_ENCRYPTED,
		cpb.NodeStorageSecurity_NODE_STORAGE_SECURITY_AUTHENTICATED_ENCRYPTED:
		return nil
	}
	return fmt.Errorf("storage security %v is not one of INSECURE, ENCRYPTED and AUTHENTICATED_ENCRYPTED", security)
}

// checkKey tells why key is not a data key for security: INSECURE has
// none, the other modes one of KeySize bytes.
func checkKey(security cpb.NodeStorageSecurity, key []byte) error {
	if err := checkSecurity(security); err != nil {
		return err
	}
	if security == cpb.NodeStorageSecurity_NODE_STORAGE_SECURITY_INSECURE {
		if key != nil {
			return errors.New("an unencrypted data partition takes no key")
		}
		return nil
	}
	if len(key) != KeySize {
		return fmt.Errorf("the data key has %d bytes, want %d", len(key), KeySize)
	}
	return nil
}
