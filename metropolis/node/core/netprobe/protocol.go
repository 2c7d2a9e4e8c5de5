package netprobe

import (
	"encoding/binary"
	"fmt"
)

// MaxBytes is the largest payload a probe may send, 1 GiB.
const MaxBytes = 1 << 30

// MaxMarkerLength is the longest marker Send accepts.
const MaxMarkerLength = 64

const (
	// magic starts every probe, so that the receiver drops anything which is
	// not one (eg. a port scanner's bytes) before reading further.
	magic = "MNP"
	// version is the protocol version following the magic, bumped on any
	// incompatible change to the header or the answer.
	version = 1
	// headerSize is the size of the header preceding the payload: magic,
	// version and the payload length.
	headerSize = len(magic) + 1 + 8
	// answerSize is the size of the receiver's answer, the number of bytes
	// it received.
	answerSize = 8
)

// appendHeader appends the header announcing a payload of length bytes to
// b.
func appendHeader(b []byte, length uint64) []byte {
	b = append(b, magic...)
	b = append(b, version)
	return binary.BigEndian.AppendUint64(b, length)
}

// parseHeader checks a header received from a sender and returns the payload
// length it announces.
func parseHeader(b []byte) (uint64, error) {
	if len(b) != headerSize {
		return 0, fmt.Errorf("header is %d bytes, want %d", len(b), headerSize)
	}
	if string(b[:len(magic)]) != magic {
		return 0, fmt.Errorf("bad magic %q, want %q", b[:len(magic)], magic)
	}
	if v := b[len(magic)]; v != version {
		return 0, fmt.Errorf("unsupported version %d, want %d", v, version)
	}
	length := binary.BigEndian.Uint64(b[len(magic)+1:])
	if err := checkLength(length); err != nil {
		return 0, err
	}
	return length, nil
}

// checkLength returns an error if a probe cannot carry length bytes.
func checkLength(length uint64) error {
	if length < 1 || length > MaxBytes {
		return fmt.Errorf("payload length %d out of range [1, %d]", length, MaxBytes)
	}
	return nil
}
