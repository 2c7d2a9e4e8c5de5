package qemu

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// MaxFrameSize is the largest frame ReadFrame accepts and WriteFrame
// writes: qemu's network packet buffer size (64 KiB for a GSO packet plus
// 4 KiB).
const MaxFrameSize = 68 << 10

// ReadFrame reads one ethernet frame of a StreamNetwork: a 4-byte
// big-endian length, then that many bytes. It returns io.EOF if r ends
// before a frame starts and io.ErrUnexpectedEOF if it ends within one. A
// length above MaxFrameSize is an error, as the bytes come from the guest.
func ReadFrame(r io.Reader) ([]byte, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, io.EOF
		}
		return nil, fmt.Errorf("reading frame length: %w", err)
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n > MaxFrameSize {
		return nil, fmt.Errorf("frame length %d exceeds %d", n, MaxFrameSize)
	}
	frame := make([]byte, n)
	if _, err := io.ReadFull(r, frame); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("reading %d-byte frame: %w", n, err)
	}
	return frame, nil
}

// WriteFrame writes one ethernet frame to a StreamNetwork in the framing
// ReadFrame reads, with one Write call.
func WriteFrame(w io.Writer, frame []byte) error {
	if len(frame) > MaxFrameSize {
		return fmt.Errorf("frame length %d exceeds %d", len(frame), MaxFrameSize)
	}
	buf := make([]byte, 4+len(frame))
	binary.BigEndian.PutUint32(buf, uint32(len(frame)))
	copy(buf[4:], frame)
	if _, err := w.Write(buf); err != nil {
		return fmt.Errorf("writing frame: %w", err)
	}
	return nil
}
