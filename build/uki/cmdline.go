package uki

import (
	"fmt"
	"strings"

	"metropolis.dev/osbase/verity"
)

// CheckCmdline checks that cmdline reaches a kernel that takes command lines
// of up to maxSize bytes exactly as it is, which systemd's stub does not
// ensure:
//
//   - It is not empty. Without a command line of its own, the stub would
//     take the boot entry's, which anyone who can write EFI variables
//     controls.
//   - It is printable ASCII on one line. The stub passes the section to
//     the kernel as a C string, so a NUL byte would silently cut it, and
//     it replaces other characters beyond ASCII with spaces, so the kernel
//     would see something else than was measured into the TPM.
//   - It is at most maxSize bytes long, the size the kernel announces in its
//     setup header: the stub cuts longer command lines, and whatever
//     stands last (the root filesystem's hash) would be lost.
func CheckCmdline(cmdline string, maxSize int) error {
	if cmdline == "" {
		return fmt.Errorf("kernel command line is empty")
	}
	for i := 0; i < len(cmdline); i++ {
		if c := cmdline[i]; c < 0x20 || c > 0x7e {
			return fmt.Errorf("kernel command line has byte %#02x at offset %d: want printable ASCII on one line", c, i)
		}
	}
	if len(cmdline) > maxSize {
		return fmt.Errorf("kernel command line has %d bytes, more than the kernel's limit of %d", len(cmdline), maxSize)
	}
	return nil
}

// VerityRootName is the name of the device-mapper device AppendVerityRoot
// maps the root filesystem to. The node's first device-mapper device is
// /dev/dm-0.
const VerityRootName = "rootfs"

// AppendVerityRoot appends to cmdline the parameters that make the root
// filesystem the read-only dm-verity device that table describes:
//
//	dm-mod.create="rootfs,,,ro,<table>" root=/dev/dm-0
//
// in the format of the kernel's dm-mod.create (Linux,
// Documentation/admin-guide/device-mapper/dm-init.rst). The table holds the
// root hash, so the signed command line vouches for every block of the root
// filesystem. A kernel with dm-verity built in sets the device up itself;
// with dm-verity as a module, as in Debian's kernel, the initramfs parses
// the same parameter (verity.ParseMappingTable reads the table) and does.
//
// A command line that chooses a root filesystem already is an error.
func AppendVerityRoot(cmdline string, table *verity.MappingTable) (string, error) {
	if err := table.Validate(); err != nil {
		return "", err
	}
	for _, p := range parameters(cmdline) {
		name, _, _ := strings.Cut(p, "=")
		if name == "root" || name == "dm-mod.create" {
			return "", fmt.Errorf("kernel command line sets %s already, which the verity root would override", name)
		}
	}
	root := fmt.Sprintf(`dm-mod.create="%s,,,ro,%s" root=/dev/dm-0`, VerityRootName, table)
	if cmdline == "" {
		return root, nil
	}
	return cmdline + " " + root, nil
}

// parameters splits a command line into parameters as the kernel does:
// at white space outside double quotes.
func parameters(cmdline string) []string {
	var params []string
	var cur strings.Builder
	quoted := false
	for _, c := range cmdline {
		switch {
		case c == '"':
			quoted = !quoted
		case strings.ContainsRune(" \t\n\v\f\r", c) && !quoted:
			if cur.Len() > 0 {
				params = append(params, cur.String())
				cur.Reset()
			}
			continue
		}
		cur.WriteRune(c)
	}
	if cur.Len() > 0 {
		params = append(params, cur.String())
	}
	return params
}
