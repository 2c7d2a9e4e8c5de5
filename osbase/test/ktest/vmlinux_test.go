package ktest

import (
	"bytes"
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// fakeBzImage returns a bzImage header with setup sectors, followed by
// the payload at payloadOffset from the end of the setup code.
func fakeBzImage(setupSects byte, version uint16, payloadOffset uint32, payload []byte) []byte {
	setup := int(setupSects)
	if setup == 0 {
		setup = 4
	}
	b := make([]byte, (setup+1)*512+int(payloadOffset)+len(payload))
	b[0x1f1] = setupSects
	copy(b[0x202:], "HdrS")
	binary.LittleEndian.PutUint16(b[0x206:], version)
	binary.LittleEndian.PutUint32(b[0x248:], payloadOffset)
	binary.LittleEndian.PutUint32(b[0x24c:], uint32(len(payload)))
	copy(b[(setup+1)*512+int(payloadOffset):], payload)
	return b
}

func TestBzImagePayload(t *testing.T) {
	payload := []byte("compressed kernel\x01\x02\x03\x04")
	for _, tc := range []struct {
		name  string
		image []byte
		want  string // error, or "" for payload
	}{
		{"39 setup sectors", fakeBzImage(39, 0x20f, 716, payload), ""},
		{"0 means 4 setup sectors", fakeBzImage(0, 0x208, 0, payload), ""},
		{"no magic", append([]byte(nil), make([]byte, 1024)...), "not a bzImage"},
		{"short", []byte("MZ"), "not a bzImage"},
		{"old protocol", fakeBzImage(4, 0x207, 0, payload), "boot protocol 2.07"},
		{"payload beyond end", fakeBzImage(4, 0x20f, 0, payload)[:5*512+4], "payload at bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := bzImagePayload(tc.image)
			if tc.want == "" {
				if err != nil || !bytes.Equal(got, payload) {
					t.Errorf("got %q, %v; want %q", got, err, payload)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

// note returns an ELF note.
func note(name string, typ uint32, desc []byte) []byte {
	pad := func(b []byte) []byte { return append(b, make([]byte, (4-len(b)%4)%4)...) }
	var b []byte
	b = binary.LittleEndian.AppendUint32(b, uint32(len(name)+1))
	b = binary.LittleEndian.AppendUint32(b, uint32(len(desc)))
	b = binary.LittleEndian.AppendUint32(b, typ)
	b = append(b, pad(append([]byte(name), 0))...)
	return append(b, pad(desc)...)
}

func TestHasNote(t *testing.T) {
	entry := []byte{0, 0, 0, 1}
	for _, tc := range []struct {
		name  string
		notes []byte
		want  bool
	}{
		{"only", note("Xen", 18, entry), true},
		{"after others", append(append(note("GNU", 3, []byte("build id")), note("Xen", 6, []byte("linux\x00"))...), note("Xen", 18, entry)...), true},
		{"other type", note("Xen", 17, entry), false},
		{"other name", note("Xe", 18, entry), false},
		{"longer name", note("Xenon", 18, entry), false},
		{"truncated", note("Xen", 18, entry)[:14], false},
		{"empty", nil, false},
	} {
		if got := hasNote(tc.notes, binary.LittleEndian, "Xen", 18); got != tc.want {
			t.Errorf("%s: got %v, want %v", tc.name, got, tc.want)
		}
	}
}

// xzCompress compresses b with the xz command.
func xzCompress(t *testing.T, b []byte) []byte {
	t.Helper()
	cmd := exec.Command("xz", "--compress", "--stdout", "--check=crc32")
	cmd.Stdin = bytes.NewReader(b)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("xz: %v", err)
	}
	return out
}

func TestExtractVmlinuxRejects(t *testing.T) {
	kernel := []byte("not an ELF file")
	withSize := func(stream []byte, size int) []byte {
		return binary.LittleEndian.AppendUint32(bytes.Clone(stream), uint32(size))
	}
	for _, tc := range []struct {
		name    string
		payload []byte
		want    string
	}{
		{"gzip", withSize([]byte{0x1f, 0x8b, 8, 0, 0, 0}, 10), "only xz is supported"},
		{"corrupt xz", withSize(append(bytes.Clone(xzMagic), "garbage"...), 10), "xz:"},
		{"wrong size", withSize(xzCompress(t, kernel), len(kernel)+1), "header says"},
		{"not ELF", withSize(xzCompress(t, kernel), len(kernel)), "the decompressed kernel"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			bz := filepath.Join(dir, "vmlinuz")
			if err := os.WriteFile(bz, fakeBzImage(4, 0x20f, 0, tc.payload), 0o644); err != nil {
				t.Fatal(err)
			}
			err := extractVmlinux(t.Context(), bz, filepath.Join(dir, "vmlinux"))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}
