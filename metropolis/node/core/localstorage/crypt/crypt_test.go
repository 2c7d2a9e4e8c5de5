package crypt

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	cpb "metropolis.dev/metropolis/proto/common"
)

const (
	insecure      = cpb.NodeStorageSecurity_NODE_STORAGE_SECURITY_INSECURE
	encrypted     = cpb.NodeStorageSecurity_NODE_STORAGE_SECURITY_ENCRYPTED
	authenticated = cpb.NodeStorageSecurity_NODE_STORAGE_SECURITY_AUTHENTICATED_ENCRYPTED
)

func TestDataKey(t *testing.T) {
	nuk := bytes.Repeat([]byte{0x0f}, KeySize)
	cuk := bytes.Repeat([]byte{0xf1}, KeySize)
	key, err := DataKey(nuk, cuk)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(key, bytes.Repeat([]byte{0xfe}, KeySize)) {
		t.Errorf("DataKey = %x, want fe...", key)
	}
	for _, tc := range []struct{ nuk, cuk []byte }{
		{nil, cuk},
		{nuk, nil},
		{nuk[:31], cuk},
		{nuk, append(cuk, 0)},
	} {
		if _, err := DataKey(tc.nuk, tc.cuk); err == nil {
			t.Errorf("DataKey of %d and %d bytes succeeded", len(tc.nuk), len(tc.cuk))
		}
	}
}

func TestDerivedKeysDiffer(t *testing.T) {
	key := bytes.Repeat([]byte{1}, KeySize)
	check := deriveKey(key, purposeKeyCheck, 32)
	xts := deriveKey(key, purposeXTS, 64)
	gcm := deriveKey(key, purposeGCM, 32)
	for _, k := range [][]byte{check, xts[:32], xts[32:], gcm} {
		if bytes.Equal(k, key) {
			t.Error("a derived key equals the data key")
		}
	}
	if bytes.Equal(check, gcm) || bytes.Equal(xts[:32], gcm) || bytes.Equal(xts[:32], xts[32:]) {
		t.Error("two uses share a key")
	}
	if !bytes.Equal(gcm, deriveKey(key, purposeGCM, 32)) {
		t.Error("deriving twice gives different keys")
	}
	other := deriveKey(bytes.Repeat([]byte{2}, KeySize), purposeGCM, 32)
	if bytes.Equal(gcm, other) {
		t.Error("different data keys derive the same key")
	}
}

func TestHeader(t *testing.T) {
	key := bytes.Repeat([]byte{7}, KeySize)
	wrong := bytes.Repeat([]byte{8}, KeySize)
	for _, tc := range []struct {
		security cpb.NodeStorageSecurity
		key      []byte
	}{
		{insecure, nil},
		{encrypted, key},
		{authenticated, key},
	} {
		t.Run(tc.security.String(), func(t *testing.T) {
			b := newHeader(tc.security, tc.key).marshal()
			if len(b) != headerSize || string(b[:8]) != "MTRPDATA" {
				t.Fatalf("header is %d bytes starting with %q", len(b), b[:8])
			}
			h, err := parseHeader(b)
			if err != nil {
				t.Fatal(err)
			}
			if err := h.verify(tc.security, tc.key); err != nil {
				t.Errorf("verify with the right key: %v", err)
			}
			if tc.key != nil {
				if err := h.verify(tc.security, wrong); !errors.Is(err, ErrWrongKey) {
					t.Errorf("verify with a wrong key: got %v, want ErrWrongKey", err)
				}
			}
			other := encrypted
			if tc.security == encrypted {
				other = authenticated
			}
			if err := h.verify(other, key); err == nil || !strings.Contains(err.Error(), "formatted for") {
				t.Errorf("verify for another mode: got %v, want a mode mismatch", err)
			}
		})
	}

	// A header whose mode was changed fails the key check: the mode is
	// covered by the HMAC.
	b := newHeader(authenticated, key).marshal()
	b[10] = byte(encrypted)
	h, err := parseHeader(b)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.verify(encrypted, key); !errors.Is(err, ErrWrongKey) {
		t.Errorf("verify of a header with its mode changed: got %v, want ErrWrongKey", err)
	}
}

func TestParseHeaderRejects(t *testing.T) {
	good := newHeader(encrypted, bytes.Repeat([]byte{7}, KeySize)).marshal()
	for _, tc := range []struct {
		name   string
		change func([]byte) []byte
		want   string
	}{
		{"zeros", func(b []byte) []byte { return make([]byte, headerSize) }, "no Metropolis header"},
		{"short", func(b []byte) []byte { return b[:100] }, "100 bytes"},
		{"version", func(b []byte) []byte { b[8] = 2; return b }, "version 2"},
		{"invalid mode", func(b []byte) []byte { b[10] = 0; return b }, "NODE_STORAGE_SECURITY_INVALID"},
		{"unknown mode", func(b []byte) []byte { b[10] = 9; return b }, "storage security 9"},
		{"reserved bytes", func(b []byte) []byte { b[12] = 1; return b }, "reserved bytes"},
		{"trailing bytes", func(b []byte) []byte { b[headerSize-1] = 1; return b }, "reserved bytes"},
		{"insecure with a check value", func(b []byte) []byte { b[10] = byte(insecure); return b }, "has a key check value"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseHeader(tc.change(bytes.Clone(good)))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("parseHeader = %v, want an error containing %q", err, tc.want)
			}
		})
	}
	if _, err := parseHeader(make([]byte, headerSize)); !errors.Is(err, ErrNotFormatted) {
		t.Errorf("parseHeader of zeros: got %v, want ErrNotFormatted", err)
	}
}

func TestCheckKey(t *testing.T) {
	key := make([]byte, KeySize)
	for _, tc := range []struct {
		security cpb.NodeStorageSecurity
		key      []byte
		ok       bool
	}{
		{insecure, nil, true},
		{insecure, key, false},
		{encrypted, key, true},
		{encrypted, nil, false},
		{authenticated, key[:16], false},
		{cpb.NodeStorageSecurity_NODE_STORAGE_SECURITY_INVALID, nil, false},
	} {
		if err := checkKey(tc.security, tc.key); (err == nil) != tc.ok {
			t.Errorf("checkKey(%v, %d bytes) = %v, want ok=%v", tc.security, len(tc.key), err, tc.ok)
		}
	}
}

// FuzzParseHeader checks that parseHeader never panics on what a disk may
// hold, and that whatever it accepts marshals back to the same bytes.
func FuzzParseHeader(f *testing.F) {
	f.Add(newHeader(encrypted, bytes.Repeat([]byte{7}, KeySize)).marshal())
	f.Add(newHeader(insecure, nil).marshal())
	f.Add(make([]byte, headerSize))
	f.Add([]byte("MTRPDATA"))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := parseHeader(b)
		if err != nil {
			return
		}
		if !bytes.Equal(h.marshal(), b[:headerSize]) {
			t.Errorf("accepted header marshals back differently")
		}
	})
}
