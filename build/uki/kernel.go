package uki

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Offsets of the fields of an x86 kernel's setup header that the stub
// relies on, from the start of the bzImage file (Linux,
// Documentation/arch/x86/boot.rst).
const (
	offBootFlag        = 0x1fe // u16, 0xaa55
	offHeaderMagic     = 0x202 // "HdrS"
	offProtocolVersion = 0x206 // u16
	offRelocatable     = 0x234 // u8
	offXLoadFlags      = 0x236 // u16
	offCmdlineSize     = 0x238 // u32
	offHandoverOffset  = 0x264 // u32

	bootFlag = 0xaa55
	// protocolHandover is boot protocol 2.11, the first with the EFI
	// handover protocol; 2.12 added xloadflags, which tell whether a
	// kernel implements it.
	protocolHandover   = 0x20b
	protocolXLoadFlags = 0x20c
	xlfEFIHandover64   = 1 << 3
	// minKernelSize is the size of the boot_params page the stub copies
	// the setup header from: it refuses smaller kernels.
	minKernelSize = 4096
)

// kernelCmdlineSize checks that kernel is an x86-64 bzImage that systemd's
// stub can hand over to, with the checks the stub makes at boot, and
// returns the longest command line it takes.
func kernelCmdlineSize(kernel []byte) (int, error) {
	if len(kernel) < minKernelSize {
		return 0, fmt.Errorf("%d bytes, too short for an x86 bzImage", len(kernel))
	}
	le := binary.LittleEndian
	if le.Uint16(kernel[offBootFlag:]) != bootFlag || string(kernel[offHeaderMagic:offHeaderMagic+4]) != "HdrS" {
		return 0, errors.New("not an x86 bzImage: no boot flag or setup header")
	}
	version := le.Uint16(kernel[offProtocolVersion:])
	if version < protocolHandover {
		return 0, fmt.Errorf("boot protocol %d.%d, want 2.11 or newer for the EFI handover protocol", version>>8, version&0xff)
	}
	if kernel[offRelocatable] == 0 {
		return 0, errors.New("not relocatable, which the stub requires")
	}
	if version >= protocolXLoadFlags && le.Uint16(kernel[offXLoadFlags:])&xlfEFIHandover64 == 0 {
		return 0, errors.New("no 64-bit EFI handover entry point (CONFIG_EFI_STUB, CONFIG_EFI_HANDOVER_PROTOCOL)")
	}
	if le.Uint32(kernel[offHandoverOffset:]) == 0 {
		return 0, errors.New("no EFI handover entry point")
	}
	return int(le.Uint32(kernel[offCmdlineSize:])), nil
}
