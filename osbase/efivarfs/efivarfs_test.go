package efivarfs

import (
	"bytes"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"metropolis.dev/osbase/gpt"
)

// testOption is a boot entry for a UKI on the first partition of a disk.
var testOption = &LoadOption{
	Attributes:  LoadOptionActive,
	Description: "AB",
	FilePath: DevicePath{
		HardDrive{
			PartitionNumber: 1,
			Start:           2048,
			Size:            0x40000,
			PartitionGUID:   mustGUID("01234567-89ab-cdef-0011-223344556677"),
		},
		FilePath(`\E`),
	},
}

// testOptionBytes is testOption as UEFI encodes it, written out by hand
// from the specification.
const testOptionBytes = "01000000" + // attributes
	"3800" + // file path list length: 42 + 10 + 4
	"410042000000" + // "AB\0"
	"0401" + "2a00" + "01000000" + "0008000000000000" + "0000040000000000" +
	"67452301ab89efcd0011223344556677" + "02" + "02" +
	"0404" + "0a00" + "5c0045000000" + // \E
	"7fff0400"

func mustGUID(s string) gpt.GUID {
	g, err := gpt.ParseGUID(s)
	if err != nil {
		panic(err)
	}
	return g
}

func TestLoadOptionMarshal(t *testing.T) {
	got, err := testOption.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if hex.EncodeToString(got) != testOptionBytes {
		t.Errorf("got  %x\nwant %s", got, testOptionBytes)
	}
}

func TestLoadOptionRoundTrip(t *testing.T) {
	o := *testOption
	o.FilePath = append(DevicePath{UnknownNode{Type: 2, SubType: 1, Data: []byte{1, 2, 3, 4}}}, o.FilePath...)
	o.OptionalData = []byte("extra")
	b, err := o.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	got, err := UnmarshalLoadOption(b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(*got, o) {
		t.Errorf("got %+v, want %+v", *got, o)
	}
}

func TestUnmarshalLoadOptionErrors(t *testing.T) {
	good, err := hex.DecodeString(testOptionBytes)
	if err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string][]byte{
		"short":               good[:5],
		"unterminated name":   good[:9],
		"path past end":       good[:len(good)-1],
		"node length too big": append(append([]byte(nil), good[:14]...), 0xff, 0xff),
	} {
		if o, err := UnmarshalLoadOption(b); err == nil {
			t.Errorf("%s: got %+v, want error", name, o)
		}
	}
}

func TestStore(t *testing.T) {
	s := Store{Dir: t.TempDir()}
	if _, _, err := s.Read(VendorGlobal, "BootNext"); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing variable: got %v, want ErrNotFound", err)
	}
	if err := s.SetBootNext(0x1a); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(s.Dir, "BootNext-"+VendorGlobal))
	if err != nil {
		t.Fatal(err)
	}
	if want := []byte{7, 0, 0, 0, 0x1a, 0}; !bytes.Equal(raw, want) {
		t.Errorf("BootNext file holds %x, want %x", raw, want)
	}
	if n, err := s.BootNext(); n != 0x1a || err != nil {
		t.Errorf("BootNext() = %#x, %v; want 0x1a", n, err)
	}
	if err := s.SetBootOrder([]uint16{3, 1}); err != nil {
		t.Fatal(err)
	}
	if order, err := s.BootOrder(); !reflect.DeepEqual(order, []uint16{3, 1}) || err != nil {
		t.Errorf("BootOrder() = %v, %v; want [3 1]", order, err)
	}
	if err := s.SetBootEntry(0xa, testOption); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(s.Dir, "Boot000A-"+VendorGlobal)); err != nil {
		t.Errorf("boot entry file: %v", err)
	}
	o, err := s.BootEntry(0xa)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(o, testOption) {
		t.Errorf("BootEntry = %+v, want %+v", o, testOption)
	}
}

func TestSecureBoot(t *testing.T) {
	s := Store{Dir: t.TempDir()}
	for _, tc := range []struct {
		value []byte
		want  bool
		err   string
	}{
		{[]byte{1}, true, ""},
		{[]byte{0}, false, ""},
		{[]byte{1, 0}, false, "want 1"},
	} {
		if err := s.Write(VendorGlobal, "SecureBoot", AttrBootServiceAccess|AttrRuntimeAccess, tc.value); err != nil {
			t.Fatal(err)
		}
		got, err := s.SecureBoot()
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("value %x: got %v, %v; want error containing %q", tc.value, got, err, tc.err)
			}
			continue
		}
		if got != tc.want || err != nil {
			t.Errorf("value %x: got %v, %v; want %v", tc.value, got, err, tc.want)
		}
	}
}
