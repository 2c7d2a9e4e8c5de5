package pefile_test

import (
	"bytes"
	"context"
	"debug/pe"
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"metropolis.dev/build/uki"
	"metropolis.dev/build/uki/pefile"
)

// pinnedStub is systemd's stub, a PE32+ image as GNU ld and objcopy made it.
var pinnedStub = sync.OnceValues(func() ([]byte, error) {
	return uki.PinnedStub(context.Background(), "../../..")
})

func testStub(t *testing.T) []byte {
	t.Helper()
	stub, err := pinnedStub()
	if err != nil {
		t.Fatalf("getting the pinned stub: %v", err)
	}
	return bytes.Clone(stub)
}

// Offsets in the stub's headers, for corrupting them.
type offsets struct{ file, opt, sections int }

func headerOffsets(b []byte) offsets {
	nt := int(binary.LittleEndian.Uint32(b[0x3c:]))
	return offsets{file: nt + 4, opt: nt + 24, sections: nt + 24 + 240}
}

func parse(t *testing.T, b []byte) *pefile.Image {
	t.Helper()
	img, err := pefile.Parse(b)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return img
}

func storedChecksum(b []byte) uint32 {
	return binary.LittleEndian.Uint32(b[headerOffsets(b).opt+64:])
}

// TestChecksum compares Checksum with the checksums GNU binutils computed:
// the stub's own, and that of a copy objcopy added a section to.
func TestChecksum(t *testing.T) {
	stub := testStub(t)
	img := parse(t, stub)
	if got, want := pefile.Checksum(stub, img.ChecksumOffset()), storedChecksum(stub); got != want {
		t.Errorf("Checksum of the stub = %#x, binutils stored %#x", got, want)
	}

	if _, err := exec.LookPath("objcopy"); err != nil {
		t.Fatal("objcopy is missing: install Debian package binutils (go run ./build/prereqs binutils)")
	}
	dir := t.TempDir()
	in, content, out := filepath.Join(dir, "stub.efi"), filepath.Join(dir, "content"), filepath.Join(dir, "out.efi")
	if err := os.WriteFile(in, stub, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(content, []byte("odd-sized content"), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("objcopy", "--add-section", ".extra="+content, "--change-section-vma", ".extra=0x40000", in, out)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("objcopy: %v\n%s", err, b)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := pefile.Checksum(b, img.ChecksumOffset()), storedChecksum(b); got != want {
		t.Errorf("Checksum of objcopy's output = %#x, objcopy stored %#x", got, want)
	}
}

func TestChecksumOddLength(t *testing.T) {
	// The words 0x0201 and 0x0003 (the odd last byte padded with zero),
	// but not the checksum field at offset 2, plus the length 7.
	data := []byte{1, 2, 0xff, 0xff, 0xff, 0xff, 3}
	if got, want := pefile.Checksum(data, 2), uint32(0x0201+0x0003+7); got != want {
		t.Errorf("Checksum = %#x, want %#x", got, want)
	}
}

// TestRoundTrip writes an unchanged image back, which must give the same
// bytes: Bytes writes every header field where Parse read it.
func TestRoundTrip(t *testing.T) {
	stub := testStub(t)
	if got := parse(t, bytes.Clone(stub)).Bytes(); !bytes.Equal(got, stub) {
		t.Error("parsing and writing back the stub changed it")
	}
}

func TestParseErrors(t *testing.T) {
	le := binary.LittleEndian
	for _, tc := range []struct {
		name    string
		corrupt func(b []byte, o offsets) []byte
		want    string
	}{
		{"empty", func([]byte, offsets) []byte { return nil }, "no MZ header"},
		{"no MZ", func(b []byte, _ offsets) []byte { b[0] = 'X'; return b }, "no MZ header"},
		{"PE header outside", func(b []byte, _ offsets) []byte { le.PutUint32(b[0x3c:], uint32(len(b))); return b }, "outside the file"},
		{"PE header unaligned", func(b []byte, _ offsets) []byte { le.PutUint32(b[0x3c:], 0x84); return b }, "unaligned"},
		{"no PE signature", func(b []byte, o offsets) []byte { b[o.file-4] = 'X'; return b }, "no PE signature"},
		{"PE32", func(b []byte, o offsets) []byte { le.PutUint16(b[o.file+16:], 224); return b }, "optional header of 224 bytes"},
		{"bad magic", func(b []byte, o offsets) []byte { le.PutUint16(b[o.opt:], 0x10b); return b }, "magic 0x10b"},
		{"few data directories", func(b []byte, o offsets) []byte { le.PutUint32(b[o.opt+108:], 6); return b }, "with 6 data directories"},
		{"file alignment", func(b []byte, o offsets) []byte { le.PutUint32(b[o.opt+36:], 0x300); return b }, "file alignment 0x300"},
		{"section alignment", func(b []byte, o offsets) []byte { le.PutUint32(b[o.opt+32:], 0x100); return b }, "section alignment 0x100"},
		{"size of headers", func(b []byte, o offsets) []byte { le.PutUint32(b[o.opt+60:], 0x200); return b }, "size of headers 0x200"},
		{"gap between sections", func(b []byte, o offsets) []byte {
			le.PutUint32(b[o.sections+40+20:], le.Uint32(b[o.sections+40+20:])+0x200)
			return b
		}, "section .reloc: data at"},
		{"section data beyond the file", func(b []byte, o offsets) []byte { return b[:0x1000] }, "after the end of the file"},
		{"overlapping sections", func(b []byte, o offsets) []byte {
			le.PutUint32(b[o.sections+40+12:], 0x5000)
			return b
		}, "section .reloc: virtual address 0x5000 overlaps"},
		{"sections beyond the image", func(b []byte, o offsets) []byte { le.PutUint32(b[o.opt+56:], 0x19000); return b }, "after the size of the image"},
		{"symbol table in a section", func(b []byte, o offsets) []byte { le.PutUint32(b[o.file+8:], 0x1000); return b }, "symbol table at 0x1000"},
		{"certificate table not at the end", func(b []byte, o offsets) []byte {
			le.PutUint32(b[o.opt+144:], 0x11400)
			le.PutUint32(b[o.opt+148:], 0x100)
			return b
		}, "certificate table at 0x11400+0x100"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := testStub(t)
			_, err := pefile.Parse(tc.corrupt(b, headerOffsets(b)))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Parse: got error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

const readOnlyData = pe.IMAGE_SCN_CNT_INITIALIZED_DATA | pe.IMAGE_SCN_MEM_READ

func TestAppendSection(t *testing.T) {
	stub := testStub(t)
	img := parse(t, bytes.Clone(stub))
	stubEnd := img.SectionsEnd()
	stubSymbols := img.File.PointerToSymbolTable
	stubInitialized := img.Optional.SizeOfInitializedData
	content := bytes.Repeat([]byte{0xab}, 1000)
	if err := img.AppendSection(".extra", content, readOnlyData); err != nil {
		t.Fatal(err)
	}
	out := img.Bytes()

	// 1000 bytes take two 512-byte blocks in the file.
	const rawSize = 1024
	if len(out) != len(stub)+rawSize {
		t.Errorf("image grew by %d bytes, want %d", len(out)-len(stub), rawSize)
	}
	if !bytes.Equal(out[stubEnd:stubEnd+rawSize], append(content, make([]byte, rawSize-len(content))...)) {
		t.Error("section data is not the content padded with zeros")
	}
	if !bytes.Equal(out[stubEnd+rawSize:], stub[stubEnd:]) {
		t.Error("the symbol table did not move behind the section unchanged")
	}
	if img.File.PointerToSymbolTable != stubSymbols+rawSize {
		t.Errorf("symbol table pointer %#x, want %#x", img.File.PointerToSymbolTable, stubSymbols+rawSize)
	}
	if img.Optional.SizeOfInitializedData != stubInitialized+rawSize {
		t.Errorf("size of initialized data %#x, want %#x", img.Optional.SizeOfInitializedData, stubInitialized+rawSize)
	}
	if got := pefile.Checksum(out, img.ChecksumOffset()); storedChecksum(out) != got {
		t.Errorf("stored checksum %#x, want %#x", storedChecksum(out), got)
	}
	// What Bytes wrote must parse to the same headers.
	again := parse(t, out)
	if again.File != img.File || again.Optional != img.Optional || !slices.Equal(again.Sections, img.Sections) {
		t.Errorf("the written headers parse differently:\n%+v\n%+v\nwant\n%+v\n%+v", again.File, again.Optional, img.File, img.Optional)
	}
}

func TestAppendSectionErrors(t *testing.T) {
	for _, tc := range []struct {
		name    string
		section string
		content []byte
		want    string
	}{
		{"long name", ".toolongx", []byte{1}, "want 1 to 8 bytes"},
		{"no name", "", []byte{1}, "want 1 to 8 bytes"},
		{"no content", ".empty", nil, "no content"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := parse(t, testStub(t)).AppendSection(tc.section, tc.content, readOnlyData)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("AppendSection: got error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

// TestAppendSectionHeaderRoom fills the room the stub's headers have for
// section headers: 312 bytes after its table, room for 7 more.
func TestAppendSectionHeaderRoom(t *testing.T) {
	img := parse(t, testStub(t))
	for i := range 7 {
		if err := img.AppendSection(".s"+string(rune('0'+i)), []byte{1}, readOnlyData); err != nil {
			t.Fatalf("section %d: %v", i, err)
		}
	}
	err := img.AppendSection(".full", []byte{1}, readOnlyData)
	if err == nil || !strings.Contains(err.Error(), "no room for another section header") {
		t.Errorf("AppendSection: got error %v, want no room", err)
	}
	if _, err := pefile.Parse(img.Bytes()); err != nil {
		t.Errorf("the full image does not parse: %v", err)
	}
}

func TestCertificateTable(t *testing.T) {
	stub := testStub(t)
	img := parse(t, stub)
	if err := img.AppendCertificateTable(make([]byte, 16)); err == nil {
		t.Error("AppendCertificateTable accepted an unpadded image")
	}
	if err := img.PadForCertificateTable(); err != nil {
		t.Fatal(err)
	}
	padded := len(img.Bytes())
	if padded%8 != 0 || padded-len(stub) >= 8 {
		t.Fatalf("padded %d bytes to %d, want the next multiple of 8", len(stub), padded)
	}
	if err := img.AppendCertificateTable(make([]byte, 12)); err == nil {
		t.Error("AppendCertificateTable accepted a table whose size is not a multiple of 8")
	}
	table := bytes.Repeat([]byte{7}, 24)
	if err := img.AppendCertificateTable(table); err != nil {
		t.Fatal(err)
	}
	signed := parse(t, img.Bytes())
	if off, size := signed.CertificateTable(); int(off) != padded || size != 24 {
		t.Errorf("certificate table at %#x+%d, want %#x+24", off, size, padded)
	}
	for name, err := range map[string]error{
		"AppendSection":          signed.AppendSection(".x", []byte{1}, readOnlyData),
		"PadForCertificateTable": signed.PadForCertificateTable(),
		"AppendCertificateTable": signed.AppendCertificateTable(table),
	} {
		if err == nil {
			t.Errorf("%s accepted a signed image", name)
		}
	}
}

// FuzzParse checks that Parse rejects what it cannot handle instead of
// panicking, and that whatever it accepts it can extend and write back.
func FuzzParse(f *testing.F) {
	stub, err := pinnedStub()
	if err != nil {
		f.Fatalf("getting the pinned stub: %v", err)
	}
	f.Add(stub)
	f.Add(stub[:0x400])
	f.Fuzz(func(t *testing.T, data []byte) {
		img, err := pefile.Parse(data)
		if err != nil {
			return
		}
		_ = img.AppendSection(".fuzz", []byte{1, 2, 3}, readOnlyData)
		if _, err := pefile.Parse(img.Bytes()); err != nil {
			t.Errorf("Parse accepted an image, but not itself extended: %v", err)
		}
	})
}
