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
	"strings"
	"testing"
	"time"
)

// fakeReceiver accepts one connection on loopback and hands it to handle,
// standing in for a Server that checks what it receives or misbehaves. It
// returns the address to send to and a channel delivering handle's error.
func fakeReceiver(t *testing.T, handle func(conn net.Conn) error) (netip.AddrPort, <-chan error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listening: %v", err)
	}
	t.Cleanup(func() { ln.Close() })
	errs := make(chan error, 1)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			errs <- err
			return
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(waitTimeout))
		errs <- handle(conn)
	}()
	return ln.Addr().(*net.TCPAddr).AddrPort(), errs
}

// readProbe reads a probe's header and payload from conn.
func readProbe(conn net.Conn) ([]byte, error) {
	var h [headerSize]byte
	if _, err := io.ReadFull(conn, h[:]); err != nil {
		return nil, fmt.Errorf("reading header: %w", err)
	}
	length, err := parseHeader(h[:])
	if err != nil {
		return nil, err
	}
	payload := make([]byte, length)
	if _, err := io.ReadFull(conn, payload); err != nil {
		return nil, fmt.Errorf("reading payload: %w", err)
	}
	return payload, nil
}

func answer(conn net.Conn, count uint64) error {
	_, err := conn.Write(binary.BigEndian.AppendUint64(nil, count))
	return err
}

func TestSendPayload(t *testing.T) {
	for _, marker := range []string{"", "x", "seven77", strings.Repeat("m", MaxMarkerLength)} {
		// Sizes around and beyond the sender's chunk, which is not a multiple
		// of every marker's length.
		for _, length := range []uint64{1, 6, 100, bufferSize - 1, bufferSize, 3*bufferSize + 5} {
			t.Run(fmt.Sprintf("%q/%d", marker, length), func(t *testing.T) {
				address, errs := fakeReceiver(t, func(conn net.Conn) error {
					payload, err := readProbe(conn)
					if err != nil {
						return err
					}
					for i, b := range payload {
						want := byte(0)
						if marker != "" {
							want = marker[i%len(marker)]
						}
						if b != want {
							return fmt.Errorf("payload byte %d is %q, want %q", i, b, want)
						}
					}
					return answer(conn, uint64(len(payload)))
				})
				send(t, address, length, []byte(marker))
				if err := <-errs; err != nil {
					t.Fatalf("receiver: %v", err)
				}
			})
		}
	}
}

func TestSendRejectsArguments(t *testing.T) {
	// Nothing listens here: arguments are checked before connecting.
	address := netip.MustParseAddrPort("127.0.0.1:1")
	for _, tc := range []struct {
		name    string
		length  uint64
		marker  []byte
		wantErr string
	}{
		{"zero length", 0, nil, "payload length 0 out of range"},
		{"over maximum", MaxBytes + 1, nil, "payload length 1073741825 out of range"},
		{"long marker", 1, bytes.Repeat([]byte("m"), MaxMarkerLength+1), "marker is 65 bytes, longer than the maximum of 64"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Send(context.Background(), address, tc.length, tc.marker)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("Send: %v, want an error containing %q", err, tc.wantErr)
			}
		})
	}
}

func TestSendFailures(t *testing.T) {
	for _, tc := range []struct {
		name     string
		receiver func(conn net.Conn) error
		wantErr  string
		wantIs   error
	}{
		{
			name: "short count",
			receiver: func(conn net.Conn) error {
				if _, err := readProbe(conn); err != nil {
					return err
				}
				return answer(conn, 999)
			},
			wantErr: "receiver confirmed 999 bytes, sent 1000",
		},
		{
			name:     "closed before reading",
			receiver: func(net.Conn) error { return nil },
			wantErr:  "receiver closed the connection without confirming",
			wantIs:   ErrRefused,
		},
		{
			name: "closed without answer",
			receiver: func(conn net.Conn) error {
				_, err := readProbe(conn)
				return err
			},
			wantErr: "reading confirmation: receiver closed the connection without confirming the payload: EOF",
			wantIs:  ErrRefused,
		},
		{
			name: "partial answer",
			receiver: func(conn net.Conn) error {
				if _, err := readProbe(conn); err != nil {
					return err
				}
				_, err := conn.Write([]byte{0, 0})
				return err
			},
			wantErr: "reading confirmation: receiver closed the connection without confirming the payload: unexpected EOF",
			wantIs:  ErrRefused,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			address, errs := fakeReceiver(t, tc.receiver)
			ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
			defer cancel()
			_, err := Send(ctx, address, 1000, nil)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("Send: %v, want an error containing %q", err, tc.wantErr)
			}
			if tc.wantIs != nil && !errors.Is(err, tc.wantIs) {
				t.Errorf("Send: %v, want %v", err, tc.wantIs)
			}
			if err := <-errs; err != nil {
				t.Fatalf("receiver: %v", err)
			}
		})
	}
}

func TestSendNobodyListening(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listening: %v", err)
	}
	address := ln.Addr().(*net.TCPAddr).AddrPort()
	ln.Close()
	_, err = Send(context.Background(), address, 1, nil)
	if err == nil || !strings.HasPrefix(err.Error(), "connecting to "+address.String()) {
		t.Errorf("Send to a closed port: %v, want a connection error", err)
	}
}

func TestSendCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// The receiver takes the probe but, instead of answering, cancels the
	// sender's context and waits for the sender to give up.
	address, errs := fakeReceiver(t, func(conn net.Conn) error {
		if _, err := readProbe(conn); err != nil {
			return err
		}
		cancel()
		if _, err := conn.Read(make([]byte, 1)); err != io.EOF {
			return fmt.Errorf("waiting for the sender to close: %v", err)
		}
		return nil
	})
	_, err := Send(ctx, address, 1000, nil)
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "reading confirmation") {
		t.Errorf("Send: %v, want context.Canceled while reading the confirmation", err)
	}
	if err := <-errs; err != nil {
		t.Fatalf("receiver: %v", err)
	}
}
