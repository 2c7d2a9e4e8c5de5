package tpm

import (
	"bytes"
	"errors"
	"testing"
)

// FuzzParseBlob feeds parseBlob arbitrary bytes: it must never panic,
// must fail with ErrInvalidBlob, and what it accepts must marshal back to
// the same bytes.
func FuzzParseBlob(f *testing.F) {
	good := testBlob(f).marshal()
	f.Add(good)
	f.Add(good[:len(good)-1])
	f.Add(good[:20])
	f.Add([]byte(blobMagic))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := parseBlob(data)
		if err != nil {
			if !errors.Is(err, ErrInvalidBlob) {
				t.Fatalf("parseBlob failed with %v, which is not ErrInvalidBlob", err)
			}
			return
		}
		if !bytes.Equal(b.marshal(), data) {
			t.Fatalf("accepted blob marshals back differently:\n got %x\nwant %x", b.marshal(), data)
		}
	})
}
