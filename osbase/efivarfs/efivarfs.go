package efivarfs

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// Path is where Linux mounts efivarfs.
const Path = "/sys/firmware/efi/efivars"

// Vendor GUIDs of the variables this package knows, in their canonical text
// form, as in efivarfs file names.
const (
	// VendorGlobal is EFI_GLOBAL_VARIABLE, the vendor of the variables
	// the UEFI specification defines (SecureBoot, Boot####, BootNext...).
	VendorGlobal = "8be4df61-93ca-11d2-aa0d-00e098032b8c"
	// VendorLoader is the vendor of the variables systemd's boot loader
	// and UEFI stub set, such as LoaderDevicePartUUID.
	VendorLoader = "4a67b082-0a4c-41cf-b6c7-440b29bb8c4f"
)

// Attributes of a variable (UEFI specification, section 8.2).
type Attributes uint32

const (
	AttrNonVolatile       Attributes = 0x01
	AttrBootServiceAccess Attributes = 0x02
	AttrRuntimeAccess     Attributes = 0x04
)

// bootVariableAttrs are the attributes of the boot manager's variables.
const bootVariableAttrs = AttrNonVolatile | AttrBootServiceAccess | AttrRuntimeAccess

// ErrNotFound is returned for a variable that does not exist.
var ErrNotFound = errors.New("no such EFI variable")

// Store is a directory of variables in efivarfs's format, normally Path.
type Store struct {
	Dir string
}

// System is the store of the running system's firmware.
var System = Store{Dir: Path}

func (s Store) path(vendor, name string) string {
	return filepath.Join(s.Dir, name+"-"+vendor)
}

// Read returns the value and attributes of a variable. It returns an error
// matching ErrNotFound if the variable does not exist.
func (s Store) Read(vendor, name string) ([]byte, Attributes, error) {
	b, err := os.ReadFile(s.path(vendor, name))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, 0, fmt.Errorf("%s-%s: %w", name, vendor, ErrNotFound)
	}
	if err != nil {
		return nil, 0, fmt.Errorf("reading EFI variable: %w", err)
	}
	if len(b) < 4 {
		return nil, 0, fmt.Errorf("EFI variable %s-%s: %d bytes, too short for its attributes", name, vendor, len(b))
	}
	return b[4:], Attributes(binary.LittleEndian.Uint32(b)), nil
}

// Write sets a variable, creating it if needed, with one write of its
// attributes and value, as efivarfs requires.
func (s Store) Write(vendor, name string, attrs Attributes, value []byte) error {
	f, err := os.OpenFile(s.path(vendor, name), os.O_WRONLY|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("writing EFI variable: %w", err)
	}
	buf := binary.LittleEndian.AppendUint32(nil, uint32(attrs))
	buf = append(buf, value...)
	if _, err := f.Write(buf); err != nil {
		f.Close()
		return fmt.Errorf("writing EFI variable %s-%s: %w", name, vendor, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("writing EFI variable %s-%s: %w", name, vendor, err)
	}
	return nil
}

// SecureBoot reports whether the firmware booted with Secure Boot enforced.
func (s Store) SecureBoot() (bool, error) {
	v, _, err := s.Read(VendorGlobal, "SecureBoot")
	if err != nil {
		return false, err
	}
	if len(v) != 1 {
		return false, fmt.Errorf("SecureBoot variable has %d bytes, want 1", len(v))
	}
	return v[0] == 1, nil
}

// readUint16 reads a variable holding one little-endian 16-bit number.
func (s Store) readUint16(name string) (uint16, error) {
	v, _, err := s.Read(VendorGlobal, name)
	if err != nil {
		return 0, err
	}
	if len(v) != 2 {
		return 0, fmt.Errorf("%s variable has %d bytes, want 2", name, len(v))
	}
	return binary.LittleEndian.Uint16(v), nil
}

// BootCurrent returns the number of the boot entry the firmware booted.
func (s Store) BootCurrent() (uint16, error) {
	return s.readUint16("BootCurrent")
}

// BootNext returns the number of the boot entry the firmware boots next,
// once. It returns an error matching ErrNotFound if none is set.
func (s Store) BootNext() (uint16, error) {
	return s.readUint16("BootNext")
}

// SetBootNext makes the firmware boot the entry Boot<n> at the next boot,
// once, instead of following BootOrder.
func (s Store) SetBootNext(n uint16) error {
	return s.Write(VendorGlobal, "BootNext", bootVariableAttrs, binary.LittleEndian.AppendUint16(nil, n))
}

// BootOrder returns the numbers of the boot entries in the order the
// firmware tries them.
func (s Store) BootOrder() ([]uint16, error) {
	v, _, err := s.Read(VendorGlobal, "BootOrder")
	if err != nil {
		return nil, err
	}
	if len(v)%2 != 0 {
		return nil, fmt.Errorf("BootOrder variable has an odd length of %d bytes", len(v))
	}
	order := make([]uint16, len(v)/2)
	for i := range order {
		order[i] = binary.LittleEndian.Uint16(v[2*i:])
	}
	return order, nil
}

// SetBootOrder sets the order in which the firmware tries boot entries.
func (s Store) SetBootOrder(order []uint16) error {
	var v []byte
	for _, n := range order {
		v = binary.LittleEndian.AppendUint16(v, n)
	}
	return s.Write(VendorGlobal, "BootOrder", bootVariableAttrs, v)
}

// BootEntryName returns the name of the variable holding boot entry n,
// such as Boot000A.
func BootEntryName(n uint16) string {
	return fmt.Sprintf("Boot%04X", n)
}

// BootEntry reads boot entry n.
func (s Store) BootEntry(n uint16) (*LoadOption, error) {
	v, _, err := s.Read(VendorGlobal, BootEntryName(n))
	if err != nil {
		return nil, err
	}
	o, err := UnmarshalLoadOption(v)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", BootEntryName(n), err)
	}
	return o, nil
}

// SetBootEntry writes boot entry n.
func (s Store) SetBootEntry(n uint16, o *LoadOption) error {
	v, err := o.Marshal()
	if err != nil {
		return fmt.Errorf("%s: %w", BootEntryName(n), err)
	}
	return s.Write(VendorGlobal, BootEntryName(n), bootVariableAttrs, v)
}
