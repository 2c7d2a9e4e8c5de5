package qemu

import (
	"bytes"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestMachineArgs(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts Options
		kvm  bool
		want []string
	}{
		{
			name: "defaults, TCG",
			want: []string{"-nodefaults", "-no-user-config", "-display", "none",
				"-machine", "q35", "-accel", "tcg,thread=multi", "-cpu", "max",
				"-m", "1024M", "-smp", "1",
				"-chardev", "stdio,id=console,signal=off", "-serial", "chardev:console",
				"-no-reboot"},
		},
		{
			name: "KVM, named, sized, rebooting",
			opts: Options{Name: "a,b", MemoryMiB: 2048, CPUs: 2, AllowReboot: true},
			kvm:  true,
			want: []string{"-nodefaults", "-no-user-config", "-display", "none",
				"-name", "a,,b",
				"-machine", "q35", "-accel", "kvm", "-cpu", "host",
				"-m", "2048M", "-smp", "2",
				"-chardev", "stdio,id=console,signal=off", "-serial", "chardev:console"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := machineArgs(tc.opts, tc.kvm)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got  %q\nwant %q", got, tc.want)
			}
		})
	}
	if _, err := machineArgs(Options{CPUs: -1}, false); err == nil {
		t.Error("a negative CPU count was accepted")
	}
}

func TestDeviceArgs(t *testing.T) {
	s := &Setup{dir: "/vm", index: 3}
	mac := net.HardwareAddr{0x02, 0x11, 0x22, 0x33, 0x44, 0x55}
	for _, tc := range []struct {
		name    string
		dev     Device
		want    []string
		wantErr string
	}{
		{
			name: "OVMF defaults",
			dev:  OVMF{},
			want: []string{
				"-drive", "if=pflash,unit=0,format=raw,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd",
				"-drive", "if=pflash,unit=1,format=raw,file=/vm/3-OVMF_VARS.fd"},
		},
		{
			name: "OVMF Secure Boot",
			dev:  OVMF{SecureBoot: true, Vars: "/state/vars,1.fd"},
			want: []string{
				"-machine", "smm=on",
				"-global", "driver=cfi.pflash01,property=secure,value=on",
				"-drive", "if=pflash,unit=0,format=raw,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.secboot.fd",
				"-drive", "if=pflash,unit=1,format=raw,file=/state/vars,,1.fd"},
		},
		{
			name: "OVMF own code",
			dev:  OVMF{Code: "/fw/code.fd", SecureBoot: true},
			want: []string{
				"-machine", "smm=on",
				"-global", "driver=cfi.pflash01,property=secure,value=on",
				"-drive", "if=pflash,unit=0,format=raw,readonly=on,file=/fw/code.fd",
				"-drive", "if=pflash,unit=1,format=raw,file=/vm/3-OVMF_VARS.fd"},
		},
		{
			name: "DirectBoot kernel only",
			dev:  DirectBoot{Kernel: "/k"},
			want: []string{"-kernel", "/k"},
		},
		{
			name: "DirectBoot everything",
			dev:  DirectBoot{Kernel: "/k", Initramfs: "/i.cpio.zst", Cmdline: "console=ttyS0 quiet"},
			want: []string{"-kernel", "/k", "-initrd", "/i.cpio.zst", "-append", "console=ttyS0 quiet"},
		},
		{
			name:    "DirectBoot without kernel",
			dev:     DirectBoot{Cmdline: "x"},
			wantErr: "needs a kernel",
		},
		{
			name:    "DirectBoot initramfs with comma",
			dev:     DirectBoot{Kernel: "/k", Initramfs: "/a,b"},
			wantErr: "comma",
		},
		{
			name: "Disk raw",
			dev:  Disk{Path: "/img,1"},
			want: []string{"-drive", "if=none,id=disk-3,format=raw,file=/img,,1", "-device", "virtio-blk-pci,drive=disk-3"},
		},
		{
			name: "Disk qcow2 read-only with serial",
			dev:  Disk{Path: "/img", Format: "qcow2", ReadOnly: true, Serial: "abc"},
			want: []string{"-drive", "if=none,id=disk-3,format=qcow2,file=/img,readonly=on", "-device", "virtio-blk-pci,drive=disk-3,serial=abc"},
		},
		{
			name: "Disk overlay",
			dev:  Disk{Path: "/img", Overlay: true},
			want: []string{"-drive", "if=none,id=disk-3,format=qcow2,cache=unsafe,file=/vm/3-overlay.qcow2", "-device", "virtio-blk-pci,drive=disk-3"},
		},
		{
			name: "TPM",
			dev:  TPM{StateDir: "/state"},
			want: []string{
				"-chardev", "socket,id=tpmchr-3,path=/vm/3-swtpm.sock",
				"-tpmdev", "emulator,id=tpm-3,chardev=tpmchr-3",
				"-device", "tpm-tis,tpmdev=tpm-3"},
		},
		{
			name: "StreamNetwork",
			dev:  StreamNetwork{SocketPath: "/run/sw,1.sock", MAC: mac},
			want: []string{
				"-netdev", "stream,id=net-3,server=off,addr.type=unix,addr.path=/run/sw,,1.sock",
				"-device", "virtio-net-pci,netdev=net-3,mac=02:11:22:33:44:55"},
		},
		{
			name:    "StreamNetwork without socket",
			dev:     StreamNetwork{},
			wantErr: "needs a socket path",
		},
		{
			name:    "StreamNetwork with too long a socket path",
			dev:     StreamNetwork{SocketPath: "/" + strings.Repeat("x", 107)},
			wantErr: "more than the 107",
		},
		{
			name:    "StreamNetwork with a short MAC",
			dev:     StreamNetwork{SocketPath: "/s", MAC: mac[:4]},
			wantErr: "not 6 bytes",
		},
		{
			name: "FwCfg file",
			dev:  FwCfg{Name: "opt/x,y", Path: "/f"},
			want: []string{"-fw_cfg", "name=opt/x,,y,file=/f"},
		},
		{
			name: "FwCfg string",
			dev:  FwCfg{Name: "opt/x", String: "a,b"},
			want: []string{"-fw_cfg", "name=opt/x,string=a,,b"},
		},
		{
			name:    "FwCfg name without opt/",
			dev:     FwCfg{Name: "x", String: "a"},
			wantErr: "does not start with opt/",
		},
		{
			name:    "FwCfg with both",
			dev:     FwCfg{Name: "opt/x", String: "a", Path: "/f"},
			wantErr: "both",
		},
		{
			name:    "FwCfg with neither",
			dev:     FwCfg{Name: "opt/x"},
			wantErr: "neither",
		},
		{
			name: "RNG",
			dev:  RNG{},
			want: []string{"-object", "rng-random,id=rng-3,filename=/dev/urandom", "-device", "virtio-rng-pci,rng=rng-3"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.dev.Args(s)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got error %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got  %q\nwant %q", got, tc.want)
			}
		})
	}
}

func TestStreamNetworkDefaultMAC(t *testing.T) {
	mac := func(dir string, index int) string {
		args, err := StreamNetwork{SocketPath: "/s"}.Args(&Setup{dir: dir, index: index})
		if err != nil {
			t.Fatal(err)
		}
		_, m, _ := strings.Cut(args[3], "mac=")
		hw, err := net.ParseMAC(m)
		if err != nil {
			t.Fatal(err)
		}
		if hw[0]&1 != 0 || hw[0]&2 == 0 {
			t.Errorf("MAC %v is not a locally administered unicast address", hw)
		}
		return m
	}
	a := mac("/a", 0)
	if again := mac("/a", 0); again != a {
		t.Errorf("the default MAC changed from %s to %s", a, again)
	}
	if a == mac("/b", 0) || a == mac("/a", 1) {
		t.Error("two cards got the same default MAC")
	}
}

func TestOVMFPrepare(t *testing.T) {
	dir := t.TempDir()
	tmpl := filepath.Join(dir, "tmpl.fd")
	if err := os.WriteFile(tmpl, []byte("template"), 0o444); err != nil {
		t.Fatal(err)
	}
	s := &Setup{dir: dir, index: 1}
	o := OVMF{VarsTemplate: tmpl}
	if err := o.Prepare(t.Context(), s); err != nil {
		t.Fatal(err)
	}
	vars := filepath.Join(dir, "1-OVMF_VARS.fd")
	if b, err := os.ReadFile(vars); err != nil || string(b) != "template" {
		t.Fatalf("the variable store is %q, %v; want a copy of the template", b, err)
	}
	// An existing store is kept.
	if err := os.WriteFile(vars, []byte("written"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := o.Prepare(t.Context(), s); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(vars); string(b) != "written" {
		t.Errorf("Prepare replaced an existing variable store with %q", b)
	}

	o = OVMF{VarsTemplate: filepath.Join(dir, "missing"), Vars: filepath.Join(dir, "new.fd")}
	if err := o.Prepare(t.Context(), s); err == nil || !strings.Contains(err.Error(), "ovmf") {
		t.Errorf("Prepare with a missing template returned %v, want an error naming the package", err)
	}
	if _, err := os.Stat(o.Vars); err == nil {
		t.Error("a failed copy left a variable store")
	}
	o = OVMF{Code: filepath.Join(dir, "missing")}
	if err := o.Prepare(t.Context(), s); err == nil || !strings.Contains(err.Error(), "ovmf") {
		t.Errorf("Prepare with missing firmware returned %v, want an error naming the package", err)
	}
}

// checkOverlay checks that overlay is a qcow2 image backed by the raw image
// base.
func checkOverlay(t *testing.T, overlay, base string) {
	t.Helper()
	out, err := exec.Command("qemu-img", "info", "--force-share", "--output=json", overlay).Output()
	if err != nil {
		t.Fatalf("qemu-img info: %v", err)
	}
	var info struct {
		Format             string `json:"format"`
		BackingFilename    string `json:"backing-filename"`
		BackingFilenameFmt string `json:"backing-filename-format"`
		VirtualSize        int64  `json:"virtual-size"`
	}
	if err := json.Unmarshal(out, &info); err != nil {
		t.Fatalf("parsing qemu-img info: %v\n%s", err, out)
	}
	fi, err := os.Stat(base)
	if err != nil {
		t.Fatal(err)
	}
	if info.Format != "qcow2" || info.BackingFilename != base || info.BackingFilenameFmt != "raw" || info.VirtualSize != fi.Size() {
		t.Errorf("overlay is %+v, want a qcow2 image of %d bytes backed by raw %s", info, fi.Size(), base)
	}
}

func TestDiskOverlay(t *testing.T) {
	dir := t.TempDir()
	base := filepath.Join(dir, "base.img")
	data := bytes.Repeat([]byte{0xa5}, 1<<20)
	if err := os.WriteFile(base, data, 0o644); err != nil {
		t.Fatal(err)
	}
	s := &Setup{dir: dir, index: 0}
	// A relative path must work, as the overlay records an absolute one.
	t.Chdir(dir)
	d := Disk{Path: "base.img", Overlay: true}
	if err := d.Prepare(t.Context(), s); err != nil {
		t.Fatal(err)
	}
	overlay := filepath.Join(dir, "0-overlay.qcow2")
	checkOverlay(t, overlay, base)

	// Writes through the overlay land in the overlay, not in the base.
	qemuIO := func(cmd string) {
		t.Helper()
		out, err := exec.Command("qemu-io", "-c", cmd, overlay).CombinedOutput()
		if err != nil || bytes.Contains(out, []byte("fail")) || bytes.Contains(out, []byte("rror")) {
			t.Fatalf("qemu-io -c %q: %v\n%s", cmd, err, out)
		}
	}
	qemuIO("write -P 0x5a 4096 4096")
	qemuIO("read -P 0x5a 4096 4096")
	qemuIO("read -P 0xa5 0 4096")
	if b, err := os.ReadFile(base); err != nil || !bytes.Equal(b, data) {
		t.Errorf("the base image changed (%v)", err)
	}

	if err := (Disk{Path: "base.img", Overlay: true, ReadOnly: true}).Prepare(t.Context(), &Setup{dir: dir, index: 1}); err == nil {
		t.Error("a read-only overlay was accepted")
	}
	if err := (Disk{Path: "missing.img"}).Prepare(t.Context(), s); err == nil {
		t.Error("a missing image was accepted")
	}
}

func TestMissingHelpers(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	dir := t.TempDir()
	base := filepath.Join(dir, "base.img")
	if err := os.WriteFile(base, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	s := &Setup{dir: dir}
	if err := (Disk{Path: base, Overlay: true}).Prepare(t.Context(), s); err == nil || !strings.Contains(err.Error(), "qemu-utils") {
		t.Errorf("Disk overlay without qemu-img returned %v, want an error naming the package", err)
	}
	if err := (TPM{}).Prepare(t.Context(), s); err == nil || !strings.Contains(err.Error(), "Debian package swtpm") {
		t.Errorf("TPM without swtpm returned %v, want an error naming the package", err)
	}
}

// TestFirmwareFiles fails if the ovmf package is not installed or no
// longer has the files the constants name.
func TestFirmwareFiles(t *testing.T) {
	for _, f := range []string{OVMFCode, OVMFCodeSecureBoot, OVMFVars, OVMFVarsMicrosoft, OVMFVarsSnakeoil, OVMFSnakeoilKey, OVMFSnakeoilCert} {
		if _, err := os.Stat(f); err != nil {
			t.Errorf("%v (install the Debian package ovmf)", err)
		}
	}
}

func TestEscapeOpt(t *testing.T) {
	for in, want := range map[string]string{"": "", "a": "a", "a,b": "a,,b", ",,": ",,,,"} {
		if got := escapeOpt(in); got != want {
			t.Errorf("escapeOpt(%q) = %q, want %q", in, got, want)
		}
	}
}
