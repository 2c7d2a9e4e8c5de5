package netprobe

import (
	"bytes"
	"encoding/binary"
	"math"
	"strings"
	"testing"
)

// header returns a header with the given magic and version bytes and length.
func header(magicAndVersion string, length uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte(magicAndVersion), length)
}

func TestParseHeader(t *testing.T) {
	for _, tc := range []struct {
		name    string
		in      []byte
		want    uint64
		wantErr string
	}{
		{"one byte", appendHeader(nil, 1), 1, ""},
		{"maximum", appendHeader(nil, MaxBytes), MaxBytes, ""},
		{"spelled out", header("MNP\x01", 4096), 4096, ""},
		{"empty", nil, 0, "header is 0 bytes"},
		{"short", appendHeader(nil, 1)[:headerSize-1], 0, "header is 11 bytes"},
		{"long", append(appendHeader(nil, 1), 0), 0, "header is 13 bytes"},
		{"bad magic", header("GET\x01", 1), 0, `bad magic "GET"`},
		{"lower case magic", header("mnp\x01", 1), 0, "bad magic"},
		{"version 0", header("MNP\x00", 1), 0, "unsupported version 0"},
		{"version 2", header("MNP\x02", 1), 0, "unsupported version 2"},
		{"zero length", appendHeader(nil, 0), 0, "payload length 0 out of range"},
		{"over maximum", appendHeader(nil, MaxBytes+1), 0, "payload length 1073741825 out of range"},
		{"largest length", appendHeader(nil, math.MaxUint64), 0, "out of range"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseHeader(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("parseHeader(%x) = %d, %v; want error containing %q", tc.in, got, err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("parseHeader(%x) = %d, %v; want %d", tc.in, got, err, tc.want)
			}
		})
	}
}

func FuzzParseHeader(f *testing.F) {
	for _, seed := range [][]byte{
		appendHeader(nil, 1),
		appendHeader(nil, 12345),
		appendHeader(nil, MaxBytes),
		appendHeader(nil, MaxBytes+1),
		appendHeader(nil, 0),
		appendHeader(nil, math.MaxUint64),
		header("MNP\x02", 1),
		header("GET", 1),
		[]byte("GET / HTTP/1.1\r\n"),
		{},
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		length, err := parseHeader(in)
		if err != nil {
			if length != 0 {
				t.Errorf("parseHeader(%x) returned length %d with error %v", in, length, err)
			}
			return
		}
		if length < 1 || length > MaxBytes {
			t.Errorf("parseHeader(%x) accepted out of range length %d", in, length)
		}
		// A header is accepted only if it is exactly what a sender writes.
		if want := appendHeader(nil, length); !bytes.Equal(in, want) {
			t.Errorf("parseHeader(%x) accepted length %d, but a sender writes %x", in, length, want)
		}
	})
}
