package gpt

import (
	"bytes"
	"strings"
	"testing"
)

func TestParseGUID(t *testing.T) {
	for _, tc := range []struct {
		in, want, err string
	}{
		{in: "C12A7328-F81F-11D2-BA4B-00A0C93EC93B", want: "c12a7328-f81f-11d2-ba4b-00a0c93ec93b"},
		{in: "ee96054b-f6d0-4267-aaaa-724b2afea74c", want: "ee96054b-f6d0-4267-aaaa-724b2afea74c"},
		{in: "00000000-0000-0000-0000-000000000000", want: "00000000-0000-0000-0000-000000000000"},
		{in: "", err: "not of the form"},
		{in: "{c12a7328-f81f-11d2-ba4b-00a0c93ec93b}", err: "not of the form"},
		{in: "c12a7328f81f11d2ba4b00a0c93ec93b", err: "not of the form"},
		{in: "c12a7328-f81f-11d2-ba4b-00a0c93ec93", err: "not of the form"},
		{in: "c12a732-8f81f-11d2-ba4b-00a0c93ec93b", err: "not of the form"},
		{in: "g12a7328-f81f-11d2-ba4b-00a0c93ec93b", err: "invalid byte"},
		{in: "c12a7328-f81f-11d2-ba4b-00a0c93ec9+b", err: "invalid byte"},
	} {
		g, err := ParseGUID(tc.in)
		switch {
		case tc.err != "":
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ParseGUID(%q) = %v, %v; want error containing %q", tc.in, g, err, tc.err)
			}
		case err != nil || g.String() != tc.want:
			t.Errorf("ParseGUID(%q) = %v, %v; want %s", tc.in, g, err, tc.want)
		}
	}
}

// TestGUIDEncoding checks the mixed-endian order on disk against the bytes
// of the ESP type GUID as the UEFI specification shows them.
func TestGUIDEncoding(t *testing.T) {
	want := []byte{0x28, 0x73, 0x2a, 0xc1, 0x1f, 0xf8, 0xd2, 0x11, 0xba, 0x4b, 0x00, 0xa0, 0xc9, 0x3e, 0xc9, 0x3b}
	got := make([]byte, 16)
	TypeEFISystem.encode(got)
	if !bytes.Equal(got, want) {
		t.Errorf("encoded ESP type is % x, want % x", got, want)
	}
	if g := decodeGUID(want); g != TypeEFISystem {
		t.Errorf("decoded %v, want %v", g, TypeEFISystem)
	}
}

// isVersion4 tells whether g has the version and variant bits of a random
// GUID (RFC 9562).
func isVersion4(g GUID) bool {
	return g[6]>>4 == 4 && g[8]>>6 == 2
}

func TestDerivedGUID(t *testing.T) {
	// The value must never change, or images built with it would; it was
	// computed independently, with Python's hashlib and uuid modules.
	if got, want := DerivedGUID("seed", "ESP").String(), "a818fb4f-15c0-49c9-9b27-80edb47bd7fd"; got != want {
		t.Errorf(`DerivedGUID("seed", "ESP") = %s, want %s`, got, want)
	}
	seen := make(map[GUID]string)
	for _, in := range [][2]string{{"seed", "ESP"}, {"seed", "ESp"}, {"seeD", "ESP"}, {"ab", "c"}, {"a", "bc"}, {"", ""}} {
		g := DerivedGUID(in[0], in[1])
		if !isVersion4(g) {
			t.Errorf("DerivedGUID(%q) = %v is not a version 4 GUID", in, g)
		}
		if other, ok := seen[g]; ok {
			t.Errorf("DerivedGUID(%q) = DerivedGUID(%q) = %v", in, other, g)
		}
		seen[g] = in[0] + "/" + in[1]
	}
}

func TestRandomGUID(t *testing.T) {
	a, b := RandomGUID(), RandomGUID()
	if a == b || !isVersion4(a) || !isVersion4(b) {
		t.Errorf("RandomGUID gave %v and %v, want two different version 4 GUIDs", a, b)
	}
}

// FuzzParseGUID checks that ParseGUID accepts exactly the canonical form,
// and that parsing, printing and the disk encoding are lossless.
func FuzzParseGUID(f *testing.F) {
	for _, s := range []string{"c12a7328-f81f-11d2-ba4b-00a0c93ec93b", "C12A7328-F81F-11D2-BA4B-00A0C93EC93B", "", "-", "00000000-0000-0000-0000-00000000000g"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		g, err := ParseGUID(s)
		if err != nil {
			return
		}
		if g.String() != strings.ToLower(s) {
			t.Fatalf("ParseGUID(%q).String() = %q", s, g.String())
		}
		var b [16]byte
		g.encode(b[:])
		if decodeGUID(b[:]) != g {
			t.Fatalf("%v does not survive encoding as % x", g, b)
		}
	})
}
