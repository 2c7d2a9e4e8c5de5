package ovmfvars

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"
	"time"
)

func TestGUID(t *testing.T) {
	const s = "8be4df61-93ca-11d2-aa0d-00e098032b8c"
	g, err := ParseGUID(strings.ToUpper(s))
	if err != nil {
		t.Fatal(err)
	}
	want := []byte{0x61, 0xdf, 0xe4, 0x8b, 0xca, 0x93, 0xd2, 0x11, 0xaa, 0x0d, 0x00, 0xe0, 0x98, 0x03, 0x2b, 0x8c}
	if !bytes.Equal(g[:], want) {
		t.Errorf("ParseGUID(%s) = % x, want % x", s, g[:], want)
	}
	if g.String() != s {
		t.Errorf("String() = %s, want %s", g, s)
	}
	for _, bad := range []string{"", "8be4df61-93ca-11d2-aa0d-00e098032b8", "8be4df61x93ca-11d2-aa0d-00e098032b8c", "8be4df61-93ca-11d2-aa0d-00e098032b8g"} {
		if _, err := ParseGUID(bad); err == nil {
			t.Errorf("ParseGUID(%q) succeeded", bad)
		}
	}
}

func TestParseBlank(t *testing.T) {
	b := readFile(t, blankStore)
	s := mustParse(t, b)
	if n := len(s.Variables()); n != 0 {
		t.Errorf("the blank store has %d variables, want none", n)
	}
	// The store fills the volume's first 256 KiB after its header.
	if want := 0x40000 - 0x48 - storeHeaderSize; s.Free() != want {
		t.Errorf("Free() = %d, want %d", s.Free(), want)
	}
	if !bytes.Equal(s.Bytes(), b) {
		t.Error("Bytes() differs from the parsed file")
	}
}

func TestParseSnakeoil(t *testing.T) {
	b := readFile(t, snakeoilStore)
	s := mustParse(t, b)
	if !bytes.Equal(s.Bytes(), b) {
		t.Error("Bytes() differs from the parsed file")
	}
	var live, retired int
	for _, v := range s.Variables() {
		if v.Live() {
			live++
		} else {
			retired++
		}
	}
	// The firmware wrote this store in a boot, replacing some variables
	// several times.
	if live < 10 || retired < 10 {
		t.Errorf("%d live and %d retired records, want the many of a store the firmware wrote", live, retired)
	}
	cert := snakeoilDER(t)
	for _, k := range []struct {
		name   string
		vendor GUID
	}{{"PK", GlobalVariableGUID}, {"KEK", GlobalVariableGUID}, {"db", ImageSecurityDatabaseGUID}} {
		v := s.Get(k.name, k.vendor)
		if v == nil {
			t.Errorf("no live %s", k.name)
			continue
		}
		if v.Attributes != secureBootKeyAttributes || v.Timestamp.IsZero() {
			t.Errorf("%s: attributes %#x, timestamp %v; want %#x and a time", k.name, v.Attributes, v.Timestamp, secureBootKeyAttributes)
		}
		lists, err := ParseSignatureLists(v.Data)
		if err != nil {
			t.Errorf("%s: %v", k.name, err)
			continue
		}
		if l := lists[0]; l.Type != CertX509GUID || len(l.Signatures) != 1 || !bytes.Equal(l.Signatures[0].Data, cert) {
			t.Errorf("%s does not hold the snakeoil certificate first", k.name)
		}
	}
	for _, k := range []struct {
		name   string
		vendor GUID
		value  byte
	}{{"SecureBootEnable", SecureBootEnableGUID, 1}, {"CustomMode", CustomModeGUID, 0}} {
		if v := s.Get(k.name, k.vendor); v == nil || !bytes.Equal(v.Data, []byte{k.value}) {
			t.Errorf("%s is %+v, want %d", k.name, v, k.value)
		}
	}
	// CustomMode was written more than once: Get finds the last one.
	var modes []Variable
	for _, v := range s.Variables() {
		if v.Name == "CustomMode" {
			modes = append(modes, v)
		}
	}
	if len(modes) < 2 || modes[0].Live() || s.Get("CustomMode", CustomModeGUID).Offset != modes[len(modes)-1].Offset {
		t.Errorf("CustomMode records %+v: want retired ones before the live one", modes)
	}
}

func TestRoundTrip(t *testing.T) {
	for _, path := range []string{blankStore, snakeoilStore, "/usr/share/OVMF/OVMF_VARS_4M.ms.fd", "/usr/share/OVMF/OVMF_VARS.fd"} {
		b := readFile(t, path)
		if got := mustParse(t, b).Bytes(); !bytes.Equal(got, b) {
			t.Errorf("%s: Bytes() differs from the parsed file", path)
		}
	}
}

func TestSet(t *testing.T) {
	b := smallStore()
	s := mustParse(t, b)
	vendor := MustParseGUID("01234567-89ab-cdef-0123-456789abcdef")
	ts := time.Date(2021, 2, 3, 4, 5, 6, 7, time.UTC)
	first := Variable{Name: "Tëst", Vendor: vendor, Attributes: 7, Data: []byte("one")}
	if err := s.Set(first); err != nil {
		t.Fatal(err)
	}
	second := Variable{Name: "Tëst", Vendor: vendor, Attributes: 0x27, Timestamp: ts, Data: []byte("second value")}
	if err := s.Set(second); err != nil {
		t.Fatal(err)
	}
	other := Variable{Name: "Tëst", Vendor: GlobalVariableGUID, Attributes: 3, Data: []byte{1}}
	if err := s.Set(other); err != nil {
		t.Fatal(err)
	}
	out := s.Bytes()
	if !bytes.Equal(out[:smallFVHeader], b[:smallFVHeader]) || !bytes.Equal(out[smallStoreBlocks*smallBlockSize:], b[smallStoreBlocks*smallBlockSize:]) {
		t.Error("Set changed the volume header or the areas after the store")
	}
	p := mustParse(t, out)
	vars := p.Variables()
	if len(vars) != 3 {
		t.Fatalf("%d records after three writes, want 3", len(vars))
	}
	if vars[0].State != VarAdded&VarDeleted || vars[0].Live() {
		t.Errorf("the replaced record has state %#x, want %#x", vars[0].State, VarAdded&VarDeleted)
	}
	got := p.Get("Tëst", vendor)
	if got == nil || string(got.Data) != "second value" || got.Attributes != 0x27 || !got.Timestamp.Equal(ts) || got.Offset%varAlignment != 0 {
		t.Errorf("Get returned %+v, want the second value with its attributes and timestamp", got)
	}
	if g := p.Get("Tëst", GlobalVariableGUID); g == nil || !bytes.Equal(g.Data, []byte{1}) {
		t.Errorf("the variable of another vendor is %+v", g)
	}
	if p.Free() != s.Free() {
		t.Errorf("the parsed store has %d bytes free, the written one %d", p.Free(), s.Free())
	}

	if err := s.Set(Variable{Name: "big", Data: make([]byte, s.Free())}); err == nil || !strings.Contains(err.Error(), "does not fit") {
		t.Errorf("setting a variable larger than the free space: %v", err)
	}
	if err := s.Set(Variable{Data: []byte{1}}); err == nil {
		t.Error("setting a variable without a name succeeded")
	}
	if err := s.Set(Variable{Name: "x", Timestamp: time.Date(1800, 1, 1, 0, 0, 0, 0, time.UTC)}); err == nil {
		t.Error("setting a timestamp EFI_TIME cannot hold succeeded")
	}
}

// TestParseErrors damages a store in every way Parse checks.
func TestParseErrors(t *testing.T) {
	le := binary.LittleEndian
	// withVar is a small store holding one variable, at varOff.
	s := mustParse(t, smallStore())
	if err := s.Set(Variable{Name: "A", Vendor: GlobalVariableGUID, Data: []byte("data")}); err != nil {
		t.Fatal(err)
	}
	withVar := s.Bytes()
	varOff := s.Variables()[0].Offset
	storeOff := smallFVHeader

	for _, tc := range []struct {
		name   string
		damage func(b []byte) []byte
		want   string
	}{
		{"truncated header", func(b []byte) []byte { return b[:40] }, "too short"},
		{"signature", func(b []byte) []byte { b[fvOffSignature] = 'X'; return b }, "no firmware volume"},
		{"file system", func(b []byte) []byte { b[fvOffFileSystemGUID] ^= 1; fixChecksum(b); return b }, "firmware volume of file system"},
		{"revision", func(b []byte) []byte { b[fvOffRevision] = 1; fixChecksum(b); return b }, "revision 1"},
		{"checksum", func(b []byte) []byte { b[fvOffBlockMap] ^= 1; return b }, "checksum"},
		{"longer than file", func(b []byte) []byte { return b[:len(b)-1] }, "the file has only"},
		{"header length", func(b []byte) []byte { le.PutUint16(b[fvOffHeaderLength:], 3); fixChecksum(b); return b }, "header length"},
		{"block map", func(b []byte) []byte {
			le.PutUint32(b[fvOffBlockMap:], smallBlocks-1)
			fixChecksum(b)
			return b
		}, "block map describes"},
		{"unterminated block map", func(b []byte) []byte {
			le.PutUint64(b[fvOffBlockMap+8:], 1)
			fixChecksum(b)
			return b
		}, "no terminating entry"},
		{"store format GUID", func(b []byte) []byte { b[storeOff] ^= 1; return b }, "want the authenticated format"},
		{"store size", func(b []byte) []byte { le.PutUint32(b[storeOff+storeOffSize:], uint32(len(b))); return b }, "does not fit"},
		{"store not formatted", func(b []byte) []byte { b[storeOff+storeOffFormat] = 0xff; return b }, "formatted"},
		{"store not healthy", func(b []byte) []byte { b[storeOff+storeOffState] = 0xff; return b }, "healthy"},
		{"variable past the end", func(b []byte) []byte { le.PutUint32(b[varOff+varOffDataSize:], 1<<20); return b }, "run past the end"},
		{"huge name", func(b []byte) []byte { le.PutUint32(b[varOff+varOffNameSize:], 0xffffffff); return b }, "run past the end"},
		{"odd name", func(b []byte) []byte { le.PutUint32(b[varOff+varOffNameSize:], 3); return b }, "not a NUL-terminated"},
		{"unterminated name", func(b []byte) []byte { b[varOff+varHeaderSize+2] = 'B'; return b }, "not NUL-terminated"},
		{"NUL in name", func(b []byte) []byte { b[varOff+varHeaderSize] = 0; return b }, "NUL before its end"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse(tc.damage(bytes.Clone(withVar)))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Parse returned %v, want an error containing %q", err, tc.want)
			}
		})
	}

	// A record whose header is all the firmware wrote is skipped by its
	// sizes, and a damaged name in it does not matter.
	b := bytes.Clone(withVar)
	b[varOff+varOffState] = VarHeaderValidOnly
	b[varOff+varHeaderSize+2] = 'B'
	p := mustParse(t, b)
	if v := p.Variables(); len(v) != 1 || v[0].Live() || p.Get("A", GlobalVariableGUID) != nil {
		t.Errorf("a record with only a header parsed as %+v", v)
	}
}
