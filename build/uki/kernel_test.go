package uki

import (
	"encoding/binary"
	"strings"
	"testing"
)

func TestKernelCmdlineSize(t *testing.T) {
	le := binary.LittleEndian
	for _, tc := range []struct {
		name   string
		change func(k []byte) []byte
		want   string // error substring; empty for success
	}{
		{"valid", func(k []byte) []byte { return k }, ""},
		{"boot protocol 2.11 has no xloadflags", func(k []byte) []byte {
			le.PutUint16(k[offProtocolVersion:], 0x20b)
			le.PutUint16(k[offXLoadFlags:], 0)
			return k
		}, ""},
		{"short", func(k []byte) []byte { return k[:minKernelSize-1] }, "too short"},
		{"no boot flag", func(k []byte) []byte { k[offBootFlag] = 0; return k }, "not an x86 bzImage"},
		{"no header magic", func(k []byte) []byte { copy(k[offHeaderMagic:], "HdrX"); return k }, "not an x86 bzImage"},
		{"old boot protocol", func(k []byte) []byte { le.PutUint16(k[offProtocolVersion:], 0x20a); return k }, "boot protocol 2.10"},
		{"not relocatable", func(k []byte) []byte { k[offRelocatable] = 0; return k }, "not relocatable"},
		{"no 64-bit handover", func(k []byte) []byte {
			le.PutUint16(k[offXLoadFlags:], 0x7f&^xlfEFIHandover64)
			return k
		}, "no 64-bit EFI handover"},
		{"no handover offset", func(k []byte) []byte { le.PutUint32(k[offHandoverOffset:], 0); return k }, "no EFI handover entry point"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			size, err := kernelCmdlineSize(tc.change(fakeKernel(8192)))
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tc.want == "" && size != 2047:
				t.Errorf("command line size %d, want 2047", size)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("got error %v, want one containing %q", err, tc.want)
			}
		})
	}
}
