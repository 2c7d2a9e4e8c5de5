package qemu

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

func TestFrameRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	frames := [][]byte{{}, []byte("ethernet frame"), bytes.Repeat([]byte{7}, MaxFrameSize)}
	for _, f := range frames {
		if err := WriteFrame(&buf, f); err != nil {
			t.Fatal(err)
		}
	}
	for _, want := range frames {
		got, err := ReadFrame(&buf)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("read a %d-byte frame, want %d bytes", len(got), len(want))
		}
	}
	if _, err := ReadFrame(&buf); err != io.EOF {
		t.Errorf("ReadFrame at the end returned %v, want io.EOF", err)
	}
}

func TestFrameErrors(t *testing.T) {
	if err := WriteFrame(io.Discard, make([]byte, MaxFrameSize+1)); err == nil {
		t.Error("WriteFrame wrote an oversized frame")
	}
	for _, tc := range []struct {
		name string
		in   []byte
		want error
	}{
		{"short length", []byte{0, 0}, io.ErrUnexpectedEOF},
		{"short frame", []byte{0, 0, 0, 3, 1, 2}, io.ErrUnexpectedEOF},
		{"empty frame missing", []byte{0, 0, 0, 1}, io.ErrUnexpectedEOF},
		{"oversized", []byte{0, 1, 0x10, 1}, nil},
		{"huge", []byte{0xff, 0xff, 0xff, 0xff}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ReadFrame(bytes.NewReader(tc.in))
			if err == nil || err == io.EOF || tc.want != nil && !errors.Is(err, tc.want) {
				t.Errorf("ReadFrame(%x) returned %v, want %v", tc.in, err, tc.want)
			}
		})
	}
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("broken") }

func TestWriteFrameError(t *testing.T) {
	if err := WriteFrame(failingWriter{}, []byte("x")); err == nil {
		t.Error("WriteFrame did not report the writer's error")
	}
}

// FuzzReadFrame checks that any bytes, as a guest might send them, either
// parse into frames that write back to the same bytes or fail cleanly.
func FuzzReadFrame(f *testing.F) {
	f.Add([]byte{0, 0, 0, 2, 0xaa, 0xbb})
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 1, 9})
	f.Add([]byte{0, 1, 0x10, 0})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 1})
	f.Fuzz(func(t *testing.T, in []byte) {
		r := bytes.NewReader(in)
		var out bytes.Buffer
		for {
			frame, err := ReadFrame(r)
			if err == io.EOF {
				if !bytes.Equal(out.Bytes(), in) {
					t.Fatalf("frames %x do not write back to the input %x", out.Bytes(), in)
				}
				return
			}
			if err != nil {
				if !bytes.HasPrefix(in, out.Bytes()) {
					t.Fatalf("frames read before an error %x are not a prefix of the input %x", out.Bytes(), in)
				}
				return
			}
			if len(frame) > MaxFrameSize {
				t.Fatalf("read a %d-byte frame", len(frame))
			}
			if err := WriteFrame(&out, frame); err != nil {
				t.Fatal(err)
			}
		}
	})
}
