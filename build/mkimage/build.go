package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"

	"metropolis.dev/build/kernel"
	"metropolis.dev/build/secureboot"
	"metropolis.dev/build/uki"
	"metropolis.dev/build/version"
	"metropolis.dev/osbase/cpio"
	"metropolis.dev/osbase/erofs"
	"metropolis.dev/osbase/fat32"
	"metropolis.dev/osbase/gpt"
	"metropolis.dev/osbase/structfs"
	"metropolis.dev/osbase/verity"
)

// Partition sizes of the image, modest for test VMs: the node grows its data
// partition to the disk at first boot (a later issue).
const (
	espSize    = 64 << 20
	systemSize = 256 << 20
	dataSize   = 128 << 20
	// diskSize leaves room for the partition tables and 1 MiB alignment.
	diskSize = 1<<20 + espSize + 2*systemSize + dataSize + 1<<20
)

// initramfsModules are the modules stage-1 loads (see
// metropolis/node/stage1), whose dependencies build/kernel adds.
var initramfsModules = []string{"crc32c_generic", "virtio_pci", "virtio_blk", "dm_verity", "erofs", "efivarfs"}

// espParametersFile is where the node looks for its parameters on the ESP
// (see metropolis/node/core/nodeparams).
const espParametersFile = "metropolis/parameters.pb"

// baseCmdline is the kernel command line of every slot, before the slot
// and its verity table. The serial console comes last, so it is
// /dev/console, where stage-1 and the core print.
const baseCmdline = "quiet console=ttyS0,115200"

// builder builds one image.
type builder struct {
	repo  string
	out   string
	slotB bool
	key   *secureboot.Key
	log   io.Writer
	// parts, if set, is where the parts of the UKIs are written too.
	parts string
	// params, if set, go on the ESP as the node's parameters.
	params []byte
	// extraCmdline is appended to every slot's command line.
	extraCmdline string

	work    string
	version version.Version
}

func (b *builder) step(format string, args ...any) {
	fmt.Fprintf(b.log, "mkimage: "+format+"\n", args...)
}

func (b *builder) build(ctx context.Context) (*Summary, error) {
	var err error
	b.work, err = os.MkdirTemp("", "mkimage-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(b.work)

	b.version, err = version.FromGit(ctx, b.repo)
	if err != nil {
		return nil, fmt.Errorf("computing the version: %w", err)
	}
	b.step("version %s", b.version)
	s := &Summary{Image: b.out, Version: b.version.String(), Cmdlines: map[string]string{}}

	b.step("building stage-1 and the node core")
	stage1, err := b.goBuild(ctx, "./metropolis/node/stage1")
	if err != nil {
		return nil, err
	}
	core, err := b.goBuild(ctx, "./metropolis/node/core")
	if err != nil {
		return nil, err
	}

	b.step("taking the kernel and its modules from the pinned Debian package")
	kernelDir, nodeModulesDir, err := b.kernel(ctx)
	if err != nil {
		return nil, err
	}
	vmlinuz, err := os.ReadFile(filepath.Join(kernelDir, kernel.VmlinuzFile))
	if err != nil {
		return nil, err
	}
	s.KernelBytes = int64(len(vmlinuz))

	b.step("writing the initramfs")
	initramfs, err := b.initramfs(stage1, kernelDir)
	if err != nil {
		return nil, err
	}
	s.InitramfsBytes = int64(len(initramfs))

	b.step("taking %d tools and their libraries from the pinned Debian packages", len(tools))
	toolsRoot, err := unpackTools(ctx, b.repo)
	if err != nil {
		return nil, fmt.Errorf("unpacking the tools: %w", err)
	}

	b.step("writing the system image and its dm-verity hash tree")
	systemPath := filepath.Join(b.work, "system.img")
	sysSize, treeSize, table, err := b.system(core, toolsRoot, nodeModulesDir, systemPath)
	if err != nil {
		return nil, err
	}
	s.SystemBytes, s.VerityBytes = sysSize, treeSize
	s.RootHash = hex.EncodeToString(table.RootHash[:])
	if sysSize+treeSize > systemSize {
		return nil, fmt.Errorf("system image and hash tree take %d bytes, more than the system partition's %d", sysSize+treeSize, systemSize)
	}

	stub, err := uki.PinnedStub(ctx, b.repo)
	if err != nil {
		return nil, fmt.Errorf("getting the UKI stub: %w", err)
	}
	slots := []string{"A"}
	if b.slotB {
		slots = append(slots, "B")
	}
	ukis := map[string][]byte{}
	for _, slot := range slots {
		b.step("assembling and signing the UKI of slot %s", slot)
		t := *table
		t.DataDevice = "PARTLABEL=" + systemPartition(slot)
		t.HashDevice = t.DataDevice
		cmdline := baseCmdline + " metropolis.slot=" + slot
		if b.extraCmdline != "" {
			cmdline += " " + b.extraCmdline
		}
		cmdline, err := uki.AppendVerityRoot(cmdline, &t)
		if err != nil {
			return nil, fmt.Errorf("slot %s command line: %w", slot, err)
		}
		image, err := uki.Build(stub, uki.Contents{
			Kernel:    vmlinuz,
			Initramfs: initramfs,
			Cmdline:   cmdline,
			OSRelease: b.version.OSRelease(),
		})
		if err != nil {
			return nil, fmt.Errorf("building the UKI of slot %s: %w", slot, err)
		}
		signed, err := secureboot.Sign(image, b.key)
		if err != nil {
			return nil, fmt.Errorf("signing the UKI of slot %s: %w", slot, err)
		}
		ukis[slot] = signed
		s.Cmdlines[slot] = cmdline
		s.UKIBytes = int64(len(signed))
	}
	s.Slots = slots
	if b.parts != "" {
		if err := b.writeParts(vmlinuz, initramfs, s.Cmdlines); err != nil {
			return nil, err
		}
	}

	b.step("writing the disk image %s", b.out)
	parts, err := b.disk(ukis, systemPath, sysSize+treeSize)
	if err != nil {
		return nil, err
	}
	s.Partitions = parts
	st, err := os.Stat(b.out)
	if err != nil {
		return nil, err
	}
	s.ImageBytes = st.Size()
	if sys, ok := st.Sys().(*syscall.Stat_t); ok {
		s.AllocatedBytes = sys.Blocks * 512
	}
	return s, nil
}

// systemPartition is the GPT name of a slot's system partition.
func systemPartition(slot string) string {
	if slot == "B" {
		return gpt.NameMetropolisSystemB
	}
	return gpt.NameMetropolisSystemA
}

// goBuild builds a static, stripped, version-stamped binary of pkg into the
// work directory. The flags make it independent of the build machine's
// paths and of git metadata other than the version.
func (b *builder) goBuild(ctx context.Context, pkg string) (string, error) {
	out := filepath.Join(b.work, filepath.Base(pkg))
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-buildvcs=false",
		"-ldflags", "-s -w -buildid= "+b.version.LDFlags(), "-o", out, pkg)
	cmd.Dir = b.repo
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64", "GOFLAGS=")
	if o, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building %s: %w\n%s", pkg, err, o)
	}
	return out, nil
}

// kernel installs the pinned kernel twice into the work directory and
// returns both: with the modules stage-1 needs, for the initramfs, and with
// the modules the node needs (kernel.ModuleListFile), for the system image.
func (b *builder) kernel(ctx context.Context) (initramfsDir, nodeDir string, err error) {
	pkg, err := kernel.Pinned(ctx, b.repo)
	if err != nil {
		return "", "", err
	}
	nodeModules, err := kernel.ReadModuleList(filepath.Join(b.repo, kernel.ModuleListFile))
	if err != nil {
		return "", "", err
	}
	initramfsDir = filepath.Join(b.work, "kernel-initramfs")
	nodeDir = filepath.Join(b.work, "kernel-node")
	for dir, modules := range map[string][]string{initramfsDir: initramfsModules, nodeDir: nodeModules} {
		sel, err := pkg.Select(modules)
		if err != nil {
			return "", "", fmt.Errorf("selecting kernel modules: %w", err)
		}
		if err := pkg.Install(dir, sel); err != nil {
			return "", "", fmt.Errorf("installing the kernel: %w", err)
		}
	}
	return initramfsDir, nodeDir, nil
}

// initramfs returns the compressed initramfs: stage-1 as /init and the
// kernel modules.
func (b *builder) initramfs(stage1, kernelDir string) ([]byte, error) {
	var t structfs.Tree
	init, err := structfs.HostFile(stage1)
	if err != nil {
		return nil, err
	}
	if err := t.Place("/init", structfs.File(0o555, init)); err != nil {
		return nil, err
	}
	if err := t.Place("/dev/console", structfs.CharDevice(0o600, 5, 1)); err != nil {
		return nil, err
	}
	if err := t.PlaceHostDir("/lib", filepath.Join(kernelDir, "lib")); err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if err := cpio.WriteCompressed(&buf, &t, cpio.Options{}); err != nil {
		return nil, fmt.Errorf("writing initramfs: %w", err)
	}
	return buf.Bytes(), nil
}

// system writes the EROFS system image followed by its hash tree to path,
// returning the sizes of both and the verity table, whose devices the
// caller fills in per slot. toolsRoot holds the unpacked packages of the
// tools (see placeTools); kernelDir is a kernel installed with the node's
// modules, which go to /lib/modules.
func (b *builder) system(core, toolsRoot, kernelDir, path string) (int64, int64, *verity.MappingTable, error) {
	var t structfs.Tree
	init, err := structfs.HostFile(core)
	if err != nil {
		return 0, 0, nil, err
	}
	productInfo, err := b.version.ProductInfoJSON()
	if err != nil {
		return 0, 0, nil, err
	}
	places := map[string]structfs.Node{
		"/init":                  structfs.File(0o555, init),
		"/etc/os-release":        structfs.File(0o444, structfs.Bytes(b.version.OSRelease())),
		"/etc/product-info.json": structfs.File(0o444, structfs.Bytes(productInfo)),
	}
	// Mount points, empty in the image.
	for _, d := range []string{"/dev", "/proc", "/sys", "/run", "/tmp", "/esp", "/data", "/ephemeral"} {
		places[d] = structfs.Dir(0o555)
	}
	for p, n := range places {
		if err := t.Place(p, n); err != nil {
			return 0, 0, nil, fmt.Errorf("system image: %w", err)
		}
	}
	if err := placeTools(&t, toolsRoot); err != nil {
		return 0, 0, nil, fmt.Errorf("system image: %w", err)
	}
	if err := t.PlaceHostDir("/lib/modules", filepath.Join(kernelDir, "lib", "modules")); err != nil {
		return 0, 0, nil, fmt.Errorf("system image: %w", err)
	}
	f, err := os.Create(path)
	if err != nil {
		return 0, 0, nil, err
	}
	defer f.Close()
	if err := erofs.Write(f, &t, erofs.Options{}); err != nil {
		return 0, 0, nil, fmt.Errorf("writing the system image: %w", err)
	}
	size, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return 0, 0, nil, err
	}
	if size%verity.BlockSize != 0 {
		return 0, 0, nil, fmt.Errorf("system image of %d bytes is not a whole number of %d-byte blocks", size, verity.BlockSize)
	}
	salt, err := verity.DeriveSalt(io.NewSectionReader(f, 0, size))
	if err != nil {
		return 0, 0, nil, err
	}
	// The tree goes right after the image, in the same file.
	enc, err := verity.NewEncoder(f, verity.Options{Salt: salt})
	if err != nil {
		return 0, 0, nil, err
	}
	if _, err := io.Copy(enc, io.NewSectionReader(f, 0, size)); err != nil {
		return 0, 0, nil, fmt.Errorf("hashing the system image: %w", err)
	}
	if err := enc.Close(); err != nil {
		return 0, 0, nil, fmt.Errorf("writing the hash tree: %w", err)
	}
	total, err := f.Seek(0, io.SeekCurrent)
	if err != nil {
		return 0, 0, nil, err
	}
	table, err := enc.MappingTable("PARTLABEL=METROPOLIS-SYSTEM-X", "PARTLABEL=METROPOLIS-SYSTEM-X", size)
	if err != nil {
		return 0, 0, nil, err
	}
	table.OptionalParameters = []string{verity.PanicOnCorruption}
	// Check the result as the kernel will, before it goes into the image.
	if err := verity.Verify(f, f, table); err != nil {
		return 0, 0, nil, fmt.Errorf("self-check of the system image: %w", err)
	}
	return size, total - size, table, f.Close()
}

// disk writes the image file: the partition table, the ESP and the system
// partitions.
func (b *builder) disk(ukis map[string][]byte, systemPath string, systemBytes int64) ([]PartitionRange, error) {
	seed := "metropolis node image " + b.version.String()
	table := &gpt.Table{DiskGUID: gpt.DerivedGUID(seed, "disk"), DiskSize: diskSize}
	parts := []struct {
		name string
		typ  gpt.GUID
		size int64
	}{
		{gpt.NameESP, gpt.TypeEFISystem, espSize},
		{gpt.NameMetropolisSystemA, gpt.TypeMetropolisSystemA, systemSize},
		{gpt.NameMetropolisSystemB, gpt.TypeMetropolisSystemB, systemSize},
		{gpt.NameMetropolisData, gpt.TypeMetropolisData, dataSize},
	}
	var ranges []PartitionRange
	for _, p := range parts {
		gp := &gpt.Partition{Type: p.typ, ID: gpt.DerivedGUID(seed, p.name), Name: p.name}
		if err := table.AddPartition(gp, p.size, 0); err != nil {
			return nil, fmt.Errorf("partition %s: %w", p.name, err)
		}
		ranges = append(ranges, PartitionRange{Name: p.name, Offset: int64(gp.FirstLBA) * 512, Size: int64(gp.LastLBA-gp.FirstLBA+1) * 512})
	}

	if err := os.MkdirAll(filepath.Dir(b.out), 0o755); err != nil {
		return nil, err
	}
	// A new file, so that everything not written reads as zeros.
	tmp := b.out + ".tmp"
	os.Remove(tmp)
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return nil, err
	}
	defer os.Remove(tmp)
	defer f.Close()
	if err := f.Truncate(diskSize); err != nil {
		return nil, err
	}
	if err := table.Write(f); err != nil {
		return nil, fmt.Errorf("writing the partition table: %w", err)
	}

	var esp structfs.Tree
	files := map[string][]byte{
		"/EFI/BOOT/BOOTX64.EFI":      ukis["A"],
		"/EFI/metropolis/boot-a.efi": ukis["A"],
	}
	if u, ok := ukis["B"]; ok {
		files["/EFI/metropolis/boot-b.efi"] = u
	}
	if b.params != nil {
		files["/"+espParametersFile] = b.params
	}
	for p, c := range files {
		if err := esp.Place(p, structfs.File(0o644, structfs.Bytes(c))); err != nil {
			return nil, err
		}
	}
	volID := sha256.Sum256([]byte(seed + " ESP"))
	espOpts := fat32.Options{
		Label:      "METROPOLIS",
		VolumeID:   binary.LittleEndian.Uint32(volID[:]),
		BlockCount: ranges[0].Size / 512,
	}
	if err := fat32.WriteFS(io.NewOffsetWriter(f, ranges[0].Offset), &esp, espOpts); err != nil {
		return nil, fmt.Errorf("writing the ESP: %w", err)
	}

	slots := []int{1}
	if _, ok := ukis["B"]; ok {
		slots = append(slots, 2)
	}
	for _, i := range slots {
		sys, err := os.Open(systemPath)
		if err != nil {
			return nil, err
		}
		_, err = io.Copy(io.NewOffsetWriter(f, ranges[i].Offset), io.LimitReader(sys, systemBytes))
		sys.Close()
		if err != nil {
			return nil, fmt.Errorf("writing %s: %w", ranges[i].Name, err)
		}
	}
	if err := f.Close(); err != nil {
		return nil, err
	}
	if err := os.Rename(tmp, b.out); err != nil {
		return nil, err
	}
	return ranges, nil
}

// Names of the files -parts writes.
const (
	partKernel    = "vmlinuz"
	partInitramfs = "initramfs.cpio.zst"
	// partCmdlinePrefix is followed by the slot and ".txt".
	partCmdlinePrefix = "cmdline-"
)

// writeParts writes the kernel, the initramfs and the command lines.
func (b *builder) writeParts(vmlinuz, initramfs []byte, cmdlines map[string]string) error {
	if err := os.MkdirAll(b.parts, 0o755); err != nil {
		return err
	}
	files := map[string][]byte{partKernel: vmlinuz, partInitramfs: initramfs}
	for slot, c := range cmdlines {
		files[partCmdlinePrefix+slot+".txt"] = []byte(c)
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(b.parts, name), content, 0o644); err != nil {
			return fmt.Errorf("writing parts: %w", err)
		}
	}
	return nil
}
