package uki

import (
	"debug/pe"
	"errors"
	"fmt"

	"metropolis.dev/build/uki/pefile"
)

// The sections systemd's stub looks for, in the order Build adds them.
const (
	SectionOSRelease = ".osrel"
	SectionCmdline   = ".cmdline"
	SectionLinux     = ".linux"
	SectionInitrd    = ".initrd"
)

// sectionCharacteristics marks the added sections as read-only initialized
// data, as objcopy does for added sections.
const sectionCharacteristics = pe.IMAGE_SCN_CNT_INITIALIZED_DATA | pe.IMAGE_SCN_MEM_READ

// Contents are what a UKI carries besides the stub.
type Contents struct {
	// Kernel is an x86-64 Linux kernel image (bzImage) that supports the
	// EFI handover protocol.
	Kernel []byte
	// Initramfs is the initial ramdisk, such as a (compressed) cpio
	// archive, or empty for none.
	Initramfs []byte
	// Cmdline is the kernel command line (see CheckCmdline).
	Cmdline string
	// OSRelease is the content of an os-release file describing the
	// image, which boot menus show.
	OSRelease []byte
}

// Build returns a UKI made of the stub, a PE32+ image of systemd's x86-64
// UEFI stub, and the contents.
func Build(stub []byte, c Contents) ([]byte, error) {
	cmdlineSize, err := kernelCmdlineSize(c.Kernel)
	if err != nil {
		return nil, fmt.Errorf("kernel: %w", err)
	}
	if err := CheckCmdline(c.Cmdline, cmdlineSize); err != nil {
		return nil, err
	}
	if len(c.OSRelease) == 0 {
		return nil, errors.New("os-release is empty")
	}
	img, err := pefile.Parse(stub)
	if err != nil {
		return nil, fmt.Errorf("stub: %w", err)
	}
	if err := checkStub(img); err != nil {
		return nil, fmt.Errorf("stub: %w", err)
	}

	sections := []struct {
		name    string
		content []byte
	}{
		{SectionOSRelease, c.OSRelease},
		{SectionCmdline, []byte(c.Cmdline)},
		{SectionLinux, c.Kernel},
		{SectionInitrd, c.Initramfs},
	}
	for _, s := range sections {
		if len(s.content) == 0 {
			// Only the initramfs is optional; the stub boots
			// without one.
			continue
		}
		if err := img.AppendSection(s.name, s.content, sectionCharacteristics); err != nil {
			return nil, fmt.Errorf("adding %s to the stub: %w", s.name, err)
		}
	}
	return img.Bytes(), nil
}

// checkStub checks that the stub is an x86-64 UEFI application that does
// not have any of the sections Build adds: the stub would use the first of
// two sections of the same name, so a UKI given as the stub would boot
// with its old kernel.
func checkStub(img *pefile.Image) error {
	if img.File.Machine != pe.IMAGE_FILE_MACHINE_AMD64 || img.Optional.Subsystem != pe.IMAGE_SUBSYSTEM_EFI_APPLICATION {
		return fmt.Errorf("machine %#x, subsystem %d: want an x86-64 (%#x) UEFI application (%d)",
			img.File.Machine, img.Optional.Subsystem, pe.IMAGE_FILE_MACHINE_AMD64, pe.IMAGE_SUBSYSTEM_EFI_APPLICATION)
	}
	for _, s := range img.Sections {
		switch name := pefile.SectionName(s); name {
		case SectionOSRelease, SectionCmdline, SectionLinux, SectionInitrd:
			return fmt.Errorf("has a %s section already; is it a UKI instead of the stub?", name)
		}
	}
	return nil
}
