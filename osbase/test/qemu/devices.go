package qemu

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// escapeOpt escapes a value for qemu's comma-separated option syntax, in
// which a literal comma is written twice.
func escapeOpt(v string) string {
	return strings.ReplaceAll(v, ",", ",,")
}

// maxSocketPath is the longest path a unix socket can have on Linux
// (sun_path holds 108 bytes including the terminating NUL).
const maxSocketPath = 107

func checkSocketPath(path string) error {
	if len(path) > maxSocketPath {
		return fmt.Errorf("socket path %q is %d bytes long, more than the %d a unix socket allows; use a shorter directory", path, len(path), maxSocketPath)
	}
	return nil
}

// Debian's OVMF firmware files (package ovmf), for a q35 machine with a
// 4 MiB flash.
const (
	// OVMFCode is the firmware without Secure Boot support.
	OVMFCode = "/usr/share/OVMF/OVMF_CODE_4M.fd"
	// OVMFCodeSecureBoot is the firmware with Secure Boot support, which
	// needs SMM.
	OVMFCodeSecureBoot = "/usr/share/OVMF/OVMF_CODE_4M.secboot.fd"
	// OVMFVars is an empty variable store: no boot entries and no Secure
	// Boot keys, so the firmware stays in setup mode.
	OVMFVars = "/usr/share/OVMF/OVMF_VARS_4M.fd"
	// OVMFVarsMicrosoft has Secure Boot enabled, with Debian's PK and
	// Microsoft's keys in KEK and db.
	OVMFVarsMicrosoft = "/usr/share/OVMF/OVMF_VARS_4M.ms.fd"
	// OVMFVarsSnakeoil has Secure Boot enabled with a test key in PK, KEK
	// and db, whose private key and certificate are OVMFSnakeoilKey and
	// OVMFSnakeoilCert: binaries signed with it boot. For tests only.
	OVMFVarsSnakeoil = "/usr/share/OVMF/OVMF_VARS_4M.snakeoil.fd"
	// OVMFSnakeoilKey is the PEM private key of the snakeoil test key,
	// encrypted with the password "snakeoil".
	OVMFSnakeoilKey = "/usr/share/ovmf/PkKek-1-snakeoil.key"
	// OVMFSnakeoilCert is the PEM certificate of the snakeoil test key.
	OVMFSnakeoilCert = "/usr/share/ovmf/PkKek-1-snakeoil.pem"
)

// OVMF boots the VM with UEFI firmware. The firmware code is shared
// read-only; the variable store, which the firmware writes (boot entries,
// Secure Boot keys), is a copy of a template.
type OVMF struct {
	// Code is the firmware; empty means OVMFCode, or OVMFCodeSecureBoot
	// with SecureBoot.
	Code string
	// VarsTemplate is the variable store the VM's copy starts from; empty
	// means OVMFVars. It is never written.
	VarsTemplate string
	// Vars is the VM's variable store. If it does not exist, it is created
	// as a copy of VarsTemplate; if it exists, it is used as it is, so that
	// a VM started again with the same Vars keeps its variables. Empty
	// means a new copy in the VM's directory.
	Vars string
	// SecureBoot runs the firmware with SMM and a flash that only SMM code
	// may write, as Secure Boot requires. Whether Secure Boot is enforced
	// depends on the keys enrolled in the variable store.
	SecureBoot bool
}

func (o OVMF) code() string {
	switch {
	case o.Code != "":
		return o.Code
	case o.SecureBoot:
		return OVMFCodeSecureBoot
	}
	return OVMFCode
}

func (o OVMF) vars(s *Setup) string {
	if o.Vars != "" {
		return o.Vars
	}
	return s.File("OVMF_VARS.fd")
}

// Prepare copies the variable store template unless the store exists.
func (o OVMF) Prepare(ctx context.Context, s *Setup) error {
	if _, err := os.Stat(o.code()); err != nil {
		return fmt.Errorf("OVMF firmware (Debian package ovmf): %w", err)
	}
	vars := o.vars(s)
	if _, err := os.Stat(vars); err == nil {
		return nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("OVMF variable store: %w", err)
	}
	tmpl := o.VarsTemplate
	if tmpl == "" {
		tmpl = OVMFVars
	}
	if err := copyFile(vars, tmpl); err != nil {
		return fmt.Errorf("copying OVMF variable store template (Debian package ovmf): %w", err)
	}
	return nil
}

// Args returns the firmware's flash drives and, for SecureBoot, the machine
// settings it needs.
func (o OVMF) Args(s *Setup) ([]string, error) {
	var args []string
	if o.SecureBoot {
		args = append(args,
			"-machine", "smm=on",
			"-global", "driver=cfi.pflash01,property=secure,value=on")
	}
	return append(args,
		"-drive", "if=pflash,unit=0,format=raw,readonly=on,file="+escapeOpt(o.code()),
		"-drive", "if=pflash,unit=1,format=raw,file="+escapeOpt(o.vars(s)),
	), nil
}

// copyFile copies src to a new file dst, which must not exist.
func copyFile(dst, src string) (err error) {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := out.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			os.Remove(dst)
		}
	}()
	_, err = io.Copy(out, in)
	return err
}

// DirectBoot boots a Linux kernel directly, without a boot loader. Without
// OVMF, qemu's default BIOS loads it, which is the fastest way to boot.
type DirectBoot struct {
	// Kernel is a bzImage (such as Debian's vmlinuz) or an uncompressed
	// vmlinux with a PVH note, which boots faster under TCG.
	Kernel string
	// Initramfs, if set, is a cpio archive, compressed or not.
	Initramfs string
	// Cmdline is the kernel's command line. For the console to reach the
	// harness, it needs console=ttyS0.
	Cmdline string
}

// Args returns -kernel, -initrd and -append.
func (d DirectBoot) Args(s *Setup) ([]string, error) {
	if d.Kernel == "" {
		return nil, errors.New("DirectBoot needs a kernel")
	}
	if strings.Contains(d.Initramfs, ",") {
		// qemu would read a comma as separating several files.
		return nil, fmt.Errorf("initramfs path %q contains a comma", d.Initramfs)
	}
	args := []string{"-kernel", d.Kernel}
	if d.Initramfs != "" {
		args = append(args, "-initrd", d.Initramfs)
	}
	if d.Cmdline != "" {
		args = append(args, "-append", d.Cmdline)
	}
	return args, nil
}

// Disk attaches a disk image as a virtio block device.
type Disk struct {
	// Path is the image.
	Path string
	// Format is the image's format, "raw" (the default) or "qcow2".
	Format string
	// Overlay leaves the image untouched: the VM writes to a new qcow2
	// image in the VM's directory that is backed by it and holds only the
	// changed blocks. The image must then not change while the VM runs.
	Overlay bool
	// ReadOnly makes the disk read-only for the guest.
	ReadOnly bool
	// Serial, if set, is the disk's serial number, which Linux shows in
	// /dev/disk/by-id.
	Serial string
}

func (d Disk) format() string {
	if d.Format == "" {
		return "raw"
	}
	return d.Format
}

func (d Disk) overlay(s *Setup) string { return s.File("overlay.qcow2") }

// Prepare creates the overlay if Overlay is set.
func (d Disk) Prepare(ctx context.Context, s *Setup) error {
	if d.Path == "" {
		return errors.New("Disk needs a path")
	}
	if _, err := os.Stat(d.Path); err != nil {
		return fmt.Errorf("disk image: %w", err)
	}
	if !d.Overlay {
		return nil
	}
	if d.ReadOnly {
		return errors.New("a Disk cannot be both ReadOnly and an Overlay")
	}
	// The overlay names its backing file by path; an absolute one keeps
	// working wherever the overlay is.
	base, err := filepath.Abs(d.Path)
	if err != nil {
		return err
	}
	return CreateOverlay(ctx, d.overlay(s), base, d.format())
}

// CreateOverlay creates a qcow2 image at path that is backed by the image
// base of the given format: it reads as base until written to, and holds
// only the blocks written to it.
func CreateOverlay(ctx context.Context, path, base, format string) error {
	qemuImg, err := exec.LookPath("qemu-img")
	if err != nil {
		return fmt.Errorf("qemu-img not found (install the Debian package qemu-utils): %w", err)
	}
	out, err := exec.CommandContext(ctx, qemuImg, "create", "-q", "-f", "qcow2", "-b", base, "-F", format, path).CombinedOutput()
	if err != nil {
		return fmt.Errorf("creating overlay of %s: qemu-img: %w: %s", base, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// Args returns the drive and its virtio-blk device.
func (d Disk) Args(s *Setup) ([]string, error) {
	id := s.ID("disk")
	drive := "if=none,id=" + id
	if d.Overlay {
		// Overlays are thrown away with the VM: flushing them to disk
		// would only slow the test down.
		drive += ",format=qcow2,cache=unsafe,file=" + escapeOpt(d.overlay(s))
	} else {
		drive += ",format=" + escapeOpt(d.format()) + ",file=" + escapeOpt(d.Path)
	}
	if d.ReadOnly {
		drive += ",readonly=on"
	}
	dev := "virtio-blk-pci,drive=" + id
	if d.Serial != "" {
		dev += ",serial=" + escapeOpt(d.Serial)
	}
	return []string{"-drive", drive, "-device", dev}, nil
}

// StreamNetwork adds a virtio network card whose frames go to a unix
// stream socket on the host, each preceded by its length (see ReadFrame and
// WriteFrame). Something must listen on the socket before the VM starts.
type StreamNetwork struct {
	// SocketPath is the socket qemu connects to.
	SocketPath string
	// MAC is the card's address. If nil, a locally administered address
	// derived from the VM's directory and the device's position is used,
	// which differs between VMs.
	MAC net.HardwareAddr
}

func (n StreamNetwork) mac(s *Setup) net.HardwareAddr {
	if n.MAC != nil {
		return n.MAC
	}
	h := sha256.Sum256([]byte(s.File("net")))
	mac := net.HardwareAddr(h[:6])
	// Unicast, locally administered.
	mac[0] = mac[0]&^0x01 | 0x02
	return mac
}

// Args returns the stream netdev and its virtio-net device.
func (n StreamNetwork) Args(s *Setup) ([]string, error) {
	if n.SocketPath == "" {
		return nil, errors.New("StreamNetwork needs a socket path")
	}
	if err := checkSocketPath(n.SocketPath); err != nil {
		return nil, err
	}
	mac := n.mac(s)
	if len(mac) != 6 {
		return nil, fmt.Errorf("MAC address %v is not 6 bytes long", mac)
	}
	id := s.ID("net")
	return []string{
		"-netdev", "stream,id=" + id + ",server=off,addr.type=unix,addr.path=" + escapeOpt(n.SocketPath),
		"-device", "virtio-net-pci,netdev=" + id + ",mac=" + mac.String(),
	}, nil
}

// FwCfg passes a file or a string to the guest through qemu's firmware
// configuration device, where Linux shows it as
// /sys/firmware/qemu_fw_cfg/by_name/NAME/raw (module qemu_fw_cfg).
type FwCfg struct {
	// Name is the item's name; it must start with "opt/".
	Name string
	// Path is the file to pass; exactly one of Path and String is set.
	Path string
	// String is the content to pass.
	String string
}

// Args returns the -fw_cfg option.
func (f FwCfg) Args(s *Setup) ([]string, error) {
	if !strings.HasPrefix(f.Name, "opt/") || len(f.Name) == len("opt/") {
		return nil, fmt.Errorf("fw_cfg name %q does not start with opt/", f.Name)
	}
	switch {
	case f.Path != "" && f.String != "":
		return nil, fmt.Errorf("fw_cfg item %s has both a path and a string", f.Name)
	case f.Path != "":
		return []string{"-fw_cfg", "name=" + escapeOpt(f.Name) + ",file=" + escapeOpt(f.Path)}, nil
	case f.String != "":
		return []string{"-fw_cfg", "name=" + escapeOpt(f.Name) + ",string=" + escapeOpt(f.String)}, nil
	}
	return nil, fmt.Errorf("fw_cfg item %s has neither a path nor a string", f.Name)
}

// RNG adds a virtio random number generator fed from the host's
// /dev/urandom, so that the guest's entropy pool is ready early.
type RNG struct{}

// Args returns the random backend and its virtio-rng device.
func (RNG) Args(s *Setup) ([]string, error) {
	id := s.ID("rng")
	return []string{
		"-object", "rng-random,id=" + id + ",filename=/dev/urandom",
		"-device", "virtio-rng-pci,rng=" + id,
	}, nil
}
