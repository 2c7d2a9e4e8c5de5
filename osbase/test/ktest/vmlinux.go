package ktest

import (
	"bytes"
	"context"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
)

// A bzImage, the form in which Debian ships the kernel, is a compressed
// kernel behind a small decompressor. Under TCG, the decompressor takes
// about half of a ktest VM's boot time, every boot. qemu can also boot the
// uncompressed kernel, an ELF file, directly through its PVH entry point,
// so ktest decompresses the kernel once, when it builds its cache.

// Offsets in the header of a bzImage (Documentation/arch/x86/boot.rst).
const (
	bzSetupSects    = 0x1f1 // u8: size of the setup code in 512-byte sectors, after the first; 0 means 4
	bzMagic         = 0x202 // "HdrS"
	bzVersion       = 0x206 // u16: boot protocol version
	bzPayloadOffset = 0x248 // u32: offset of the payload from the end of the setup code
	bzPayloadLength = 0x24c // u32: length of the payload
)

// xzMagic starts an xz stream.
var xzMagic = []byte{0xfd, '7', 'z', 'X', 'Z', 0}

// bzImagePayload returns the compressed kernel in a bzImage. It is
// followed by the kernel's uncompressed size, a little-endian uint32.
func bzImagePayload(b []byte) ([]byte, error) {
	if len(b) < bzPayloadLength+4 || string(b[bzMagic:bzMagic+4]) != "HdrS" {
		return nil, errors.New("not a bzImage")
	}
	// The payload fields exist from boot protocol 2.08 on.
	if v := binary.LittleEndian.Uint16(b[bzVersion:]); v < 0x208 {
		return nil, fmt.Errorf("boot protocol %d.%02d has no payload fields", v>>8, v&0xff)
	}
	setup := int64(b[bzSetupSects])
	if setup == 0 {
		setup = 4
	}
	start := (setup+1)*512 + int64(binary.LittleEndian.Uint32(b[bzPayloadOffset:]))
	end := start + int64(binary.LittleEndian.Uint32(b[bzPayloadLength:]))
	if end > int64(len(b)) {
		return nil, fmt.Errorf("payload at bytes %d-%d of a %d-byte bzImage", start, end, len(b))
	}
	return b[start:end], nil
}

// extractVmlinux decompresses the kernel in the bzImage at path into the
// file out, and checks that qemu can boot it through its PVH entry point.
// Only xz-compressed kernels, which Debian builds, are supported; they are
// decompressed with the xz command, as the Go xz libraries lack the x86
// filter the kernel's build applies.
func extractVmlinux(ctx context.Context, bzImage, out string) error {
	b, err := os.ReadFile(bzImage)
	if err != nil {
		return err
	}
	payload, err := bzImagePayload(b)
	if err != nil {
		return fmt.Errorf("%s: %w", bzImage, err)
	}
	if !bytes.HasPrefix(payload, xzMagic) || len(payload) < len(xzMagic)+4 {
		return fmt.Errorf("%s: the kernel is not xz-compressed (starts with %x); only xz is supported", bzImage, payload[:min(len(payload), 6)])
	}
	stream, size := payload[:len(payload)-4], binary.LittleEndian.Uint32(payload[len(payload)-4:])

	xz, err := exec.LookPath("xz")
	if err != nil {
		return fmt.Errorf("xz not found (install the Debian package xz-utils): %w", err)
	}
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	defer f.Close()
	var stderr strings.Builder
	cmd := exec.CommandContext(ctx, xz, "--decompress", "--stdout")
	cmd.Stdin = bytes.NewReader(stream)
	cmd.Stdout = f
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("decompressing the kernel in %s: xz: %w: %s", bzImage, err, strings.TrimSpace(stderr.String()))
	}
	if fi, err := f.Stat(); err != nil {
		return err
	} else if fi.Size() != int64(size) {
		return fmt.Errorf("the kernel in %s decompressed to %d bytes, its header says %d", bzImage, fi.Size(), size)
	}
	if err := f.Close(); err != nil {
		return err
	}
	return checkPVH(out)
}

// Xen's ELF note that holds the 32-bit entry point PVH boots from
// (XEN_ELFNOTE_PHYS32_ENTRY in xen/include/public/elfnote.h).
const (
	xenNoteName        = "Xen"
	xenNotePhys32Entry = 18
)

// checkPVH checks that the ELF file at path has a PVH entry point, which
// qemu needs to boot it.
func checkPVH(path string) error {
	f, err := elf.Open(path)
	if err != nil {
		return fmt.Errorf("the decompressed kernel: %w", err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type != elf.PT_NOTE {
			continue
		}
		data := make([]byte, p.Filesz)
		if _, err := p.ReadAt(data, 0); err != nil {
			return fmt.Errorf("the decompressed kernel: reading notes: %w", err)
		}
		if hasNote(data, f.ByteOrder, xenNoteName, xenNotePhys32Entry) {
			return nil
		}
	}
	return errors.New("the decompressed kernel has no PVH entry point (CONFIG_PVH)")
}

// hasNote tells whether the ELF notes in data include one with the given
// name and type. Each note is a header of three words (name size,
// description size, type), then the NUL-terminated name and the
// description, each padded to 4 bytes.
func hasNote(data []byte, order binary.ByteOrder, name string, typ uint32) bool {
	pad := func(n uint64) uint64 { return (n + 3) &^ 3 }
	for len(data) >= 12 {
		nameSize, descSize := uint64(order.Uint32(data)), uint64(order.Uint32(data[4:]))
		t := order.Uint32(data[8:])
		rest := data[12:]
		if pad(nameSize)+pad(descSize) > uint64(len(rest)) {
			return false
		}
		if t == typ && nameSize == uint64(len(name))+1 && string(rest[:nameSize]) == name+"\x00" {
			return true
		}
		data = rest[pad(nameSize)+pad(descSize):]
	}
	return false
}
