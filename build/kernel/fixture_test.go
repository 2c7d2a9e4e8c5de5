package kernel

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const testRelease = "6.1.0-99-test"

// elfWithModinfo returns a minimal ELF relocatable file, like a kernel
// module, whose .modinfo section holds the given key=value records.
func elfWithModinfo(t testing.TB, records []string) []byte {
	t.Helper()
	modinfo := []byte(strings.Join(records, "\x00") + "\x00")
	shstrtab := []byte("\x00.modinfo\x00.shstrtab\x00")
	const ehsize, shentsize = 64, 64
	modinfoOff := uint64(ehsize)
	shstrtabOff := modinfoOff + uint64(len(modinfo))
	shoff := shstrtabOff + uint64(len(shstrtab))

	var b bytes.Buffer
	hdr := elf.Header64{
		Type:      uint16(elf.ET_REL),
		Machine:   uint16(elf.EM_X86_64),
		Version:   uint32(elf.EV_CURRENT),
		Shoff:     shoff,
		Ehsize:    ehsize,
		Shentsize: shentsize,
		Shnum:     3,
		Shstrndx:  2,
	}
	copy(hdr.Ident[:], elf.ELFMAG)
	hdr.Ident[elf.EI_CLASS] = byte(elf.ELFCLASS64)
	hdr.Ident[elf.EI_DATA] = byte(elf.ELFDATA2LSB)
	hdr.Ident[elf.EI_VERSION] = byte(elf.EV_CURRENT)
	sections := []elf.Section64{
		{},
		{Name: 1, Type: uint32(elf.SHT_PROGBITS), Off: modinfoOff, Size: uint64(len(modinfo)), Addralign: 1},
		{Name: 10, Type: uint32(elf.SHT_STRTAB), Off: shstrtabOff, Size: uint64(len(shstrtab)), Addralign: 1},
	}
	for _, v := range []any{hdr, modinfo, shstrtab, sections} {
		if err := binary.Write(&b, binary.LittleEndian, v); err != nil {
			t.Fatal(err)
		}
	}
	return b.Bytes()
}

// testModule describes a module of the test package.
type testModule struct {
	path    string
	records []string
}

// module returns a module whose name= and vermagic= records are right for
// its file and the test release.
func module(path string, records ...string) testModule {
	name := normalizeName(strings.TrimSuffix(filepath.Base(path), ".ko"))
	return testModule{path, append(records, "name="+name, "vermagic="+testRelease+" SMP preempt mod_unload modversions ")}
}

// The test package mirrors real relations between Debian's modules.
var testModules = []testModule{
	module("kernel/drivers/virtio/virtio_ring.ko", "depends="),
	module("kernel/drivers/virtio/virtio.ko", "depends=virtio_ring"),
	module("kernel/drivers/virtio/virtio_pci_modern_dev.ko", "depends="),
	module("kernel/drivers/virtio/virtio_pci.ko", "alias=pci:v00001AF4d*sv*sd*bc*sc*i*", "depends=virtio_ring,virtio_pci_modern_dev,virtio"),
	module("kernel/drivers/block/virtio_blk.ko", "alias=virtio:d00000002v*", "depends=virtio,virtio_ring"),
	module("kernel/lib/libcrc32c.ko", "softdep=pre: crc32c", "depends="),
	module("kernel/crypto/crc32c_generic.ko", "alias=crypto-crc32c", "alias=crc32c", "depends="),
	module("kernel/arch/x86/crypto/crc32c-intel.ko", "alias=crypto-crc32c", "alias=crc32c", "alias=cpu:type:x86,ven*fam*mod*:feature:*0094*", "depends="),
	module("kernel/fs/erofs/erofs.ko", "alias=fs-erofs", "depends=libcrc32c"),
	module("kernel/crypto/xts.ko", "softdep=pre: ecb", "depends="),
	module("kernel/net/x/post.ko", "softdep=post: virtio-blk", "depends="),
	module("kernel/net/x/lost.ko", "softdep=pre: no_such_thing", "depends="),
	// Like cifs in Debian 12: a soft dependency without pre: or post:.
	module("kernel/fs/smb/broken.ko", "softdep=gcm ccm", "depends="),
	module("kernel/fs/x/orphan.ko", "depends=not_in_package"),
}

// writePackage writes an unpacked kernel package holding the modules.
func writePackage(t testing.TB, mods []testModule) string {
	t.Helper()
	root := t.TempDir()
	files := map[string][]byte{
		"boot/vmlinuz-" + testRelease:                     []byte("kernel image"),
		"lib/modules/" + testRelease + "/modules.builtin": []byte("kernel/crypto/ecb.ko\nkernel/drivers/char/tpm/tpm_crb.ko\n"),
	}
	for _, m := range mods {
		files["lib/modules/"+testRelease+"/"+m.path] = elfWithModinfo(t, m.records)
	}
	for name, content := range files {
		p := filepath.Join(root, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, content, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}
