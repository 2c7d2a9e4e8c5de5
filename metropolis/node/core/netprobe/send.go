package netprobe

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"syscall"
	"time"
)

// bufferSize is the size of the sender's writes and the receiver's reads:
// large enough that a probe is bound by the network, not by system calls.
const bufferSize = 64 << 10

// ErrRefused is returned by Send when the receiver closed the connection
// without confirming the payload. The receiver does that when it does not
// allow the sender's address, is already receiving as many probes as it
// takes at once, rejected the header, or timed out waiting for data.
var ErrRefused = errors.New("receiver closed the connection without confirming the payload")

// Result is the outcome of a probe.
type Result struct {
	// Bytes is how many bytes the receiver confirmed, the whole payload.
	Bytes uint64
	// Duration is the time from connecting until the receiver's
	// confirmation arrived.
	Duration time.Duration
}

// Send sends a probe of length bytes, between 1 and MaxBytes, to the Server
// at address and waits for the receiver to confirm it. The payload is marker
// repeated, or zeroes if marker is empty; marker is at most MaxMarkerLength
// bytes.
//
// Send only stops early when ctx is done, so callers should give it a
// deadline.
func Send(ctx context.Context, address netip.AddrPort, length uint64, marker []byte) (Result, error) {
	if err := checkLength(length); err != nil {
		return Result{}, err
	}
	if len(marker) > MaxMarkerLength {
		return Result{}, fmt.Errorf("marker is %d bytes, longer than the maximum of %d", len(marker), MaxMarkerLength)
	}
	chunk := payloadChunk(int(min(length, bufferSize)), marker)

	var dialer net.Dialer
	conn, err := dialer.DialContext(ctx, "tcp", address.String())
	if err != nil {
		return Result{}, fmt.Errorf("connecting to %s: %w", address, err)
	}
	defer conn.Close()
	// Unblock reads and writes once ctx is done.
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Now()) })
	defer stop()

	start := time.Now()
	confirmed, err := exchange(ctx, conn, length, chunk)
	duration := time.Since(start)
	if err != nil {
		return Result{}, fmt.Errorf("probing %s: %w", address, err)
	}
	if confirmed != length {
		return Result{}, fmt.Errorf("probing %s: receiver confirmed %d bytes, sent %d", address, confirmed, length)
	}
	return Result{Bytes: confirmed, Duration: duration}, nil
}

// payloadChunk returns a buffer of about size bytes to be written again and
// again as the payload. Its length is a multiple of the marker's, so that
// the marker repeats seamlessly across writes.
func payloadChunk(size int, marker []byte) []byte {
	if len(marker) == 0 {
		return make([]byte, size)
	}
	return bytes.Repeat(marker, max(size/len(marker), 1))
}

// exchange sends the header and payload on conn and returns the number of
// bytes the receiver confirmed.
func exchange(ctx context.Context, conn net.Conn, length uint64, chunk []byte) (uint64, error) {
	if _, err := conn.Write(appendHeader(nil, length)); err != nil {
		return 0, fmt.Errorf("writing header: %w", connError(ctx, err))
	}
	for sent := uint64(0); sent < length; {
		n, err := conn.Write(chunk[:min(uint64(len(chunk)), length-sent)])
		sent += uint64(n)
		if err != nil {
			return 0, fmt.Errorf("writing payload after %d of %d bytes: %w", sent, length, connError(ctx, err))
		}
	}
	var answer [answerSize]byte
	if _, err := io.ReadFull(conn, answer[:]); err != nil {
		return 0, fmt.Errorf("reading confirmation: %w", connError(ctx, err))
	}
	return binary.BigEndian.Uint64(answer[:]), nil
}

// connError explains an error of a read or write on the connection: the
// reason ctx is done if it is (its deadline is what made the I/O fail), or
// ErrRefused if the receiver closed the connection.
func connError(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) {
		return fmt.Errorf("%w: %w", ErrRefused, err)
	}
	return err
}
