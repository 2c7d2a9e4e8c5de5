package kmod

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// realAliases are lines of the modules.alias the image build writes for
// Debian 12's kernel (6.1.0-56-amd64).
const realAliases = `# Aliases extracted from modules.
alias pci:v00001AF4d*sv*sd*bc*sc*i* virtio_pci
alias virtio:d00000002v* virtio_blk
alias virtio:d00000001v* virtio_net
alias virtio:d00000004v* virtio_rng
alias virtio:d00000008v* virtio_scsi
alias pci:v*d*sv*sd*bc01sc08i02* nvme
alias pci:v00001D0Fd0000CD01sv*sd*bc*sc*i* nvme
alias pci:v*d*sv*sd*bc01sc06i01* ahci
alias pci:v00008086d0000100Esv*sd*bc*sc*i* e1000
alias pci:v00008086d000010B5sv*sd*bc*sc*i* e1000
alias usb:v*p*d*dc*dsc*dp*ic08isc06ip50in* usb_storage
alias usb:v1554p5010d3[0-9A-E]*dc*dsc*dp*ic*isc*ip*in* usb_storage
alias crypto-crc32c-intel crc32c_intel
alias crc32c-intel crc32c_intel
alias crypto-crc32c crc32c_intel
alias crc32c crc32c_intel
alias cpu:type:x86,ven*fam*mod*:feature:*0094* crc32c_intel
alias crypto-crc32c-generic crc32c_generic
alias crc32c-generic crc32c_generic
alias crypto-crc32c crc32c_generic
alias crc32c crc32c_generic
alias dmi:*:[bs]vnD[Ee][Ll][Ll]*:* dell_smbios
alias fs-vfat vfat
`

func TestLookupRealAliases(t *testing.T) {
	x := newAliasIndex()
	if err := x.parse(strings.NewReader(realAliases)); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		modalias string
		want     []string
	}{
		// What qemu's devices report.
		{"pci:v00001AF4d00001000sv00001AF4sd00000001bc02sc00i00", []string{"virtio_pci"}},
		{"pci:v00001AF4d00001001sv00001AF4sd00000002bc01sc00i00", []string{"virtio_pci"}},
		{"virtio:d00000001v00001AF4", []string{"virtio_net"}},
		{"virtio:d00000002v00001AF4", []string{"virtio_blk"}},
		{"virtio:d00000004v00001AF4", []string{"virtio_rng"}},
		{"virtio:d00000008v00001AF4", []string{"virtio_scsi"}},
		{"virtio:d00000003v00001AF4", nil},
		{"pci:v00001B36d00000010sv00001AF4sd00001100bc01sc08i02", []string{"nvme"}},
		{"pci:v00001D0Fd0000CD01sv00001D0Fsd00000000bc01sc08i00", []string{"nvme"}},
		{"pci:v00008086d00002922sv00001AF4sd00001100bc01sc06i01", []string{"ahci"}},
		{"pci:v00008086d0000100Esv00001AF4sd00001100bc02sc00i00", []string{"e1000"}},
		{"pci:v00008086d0000100Fsv00001AF4sd00001100bc02sc00i00", nil},
		{"usb:v0781p5567d0100dc00dsc00dp00ic08isc06ip50in00", []string{"usb_storage"}},
		{"usb:v1554p5010d3B00dc00dsc00dp00icFFiscFFipFFin00", []string{"usb_storage"}},
		{"cpu:type:x86,ven0000fam0006mod003A:feature:,0000,0001,0094,00E6", []string{"crc32c_intel"}},
		{"crc32c", []string{"crc32c_generic", "crc32c_intel"}},
		{"crypto-crc32c", []string{"crc32c_generic", "crc32c_intel"}},
		{"crc32c-intel", []string{"crc32c_intel"}},
		{"crc32", nil},
		{"dmi:bvnDell Inc.:bvr2.1:bd01/01/2020:svnDell Inc.:pnOptiPlex", []string{"dell_smbios"}},
		{"fs-vfat", []string{"vfat"}},
		{"", nil},
		{"pci:", nil},
	} {
		if got := x.lookup(tc.modalias); !slices.Equal(got, tc.want) {
			t.Errorf("lookup(%q): got %v, want %v", tc.modalias, got, tc.want)
		}
	}
}

func TestParseAliasErrors(t *testing.T) {
	for _, tc := range []struct{ in, wantErr string }{
		{"alias foo", `line 1: want "alias PATTERN MODULE"`},
		{"\nalias a b c", `line 2: want "alias PATTERN MODULE"`},
		{"options foo bar", `want "alias PATTERN MODULE"`},
		{"alias [z-a] foo", "line 1: alias \"[z-a]\" of foo: bracket expression"},
	} {
		err := newAliasIndex().parse(strings.NewReader(tc.in))
		if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("parsing %q: got error %v, want one containing %q", tc.in, err, tc.wantErr)
		}
	}
}

// writeModuleDir creates a module directory holding the given index files.
func writeModuleDir(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestReadIndex(t *testing.T) {
	dir := writeModuleDir(t, map[string]string{
		DepFile: `kernel/fs/erofs/erofs.ko: kernel/lib/libcrc32c.ko
kernel/lib/libcrc32c.ko:
kernel/crypto/crc32c_generic.ko:
kernel/drivers/char/hw_random/virtio-rng.ko.xz:
`,
		AliasFile:   "alias crc32c crc32c_generic\nalias virtio:d00000004v* virtio_rng\n",
		SoftdepFile: "# Soft dependencies extracted from modules themselves.\nsoftdep libcrc32c pre: crc32c\nsoftdep erofs pre: a post: b c pre: d\nsoftdep nls_base pre: x\n",
		BuiltinFile: "kernel/fs/nls/nls_base.ko\nkernel/drivers/char/tpm/tpm-crb.ko\n",
	})
	x, err := ReadIndex(dir)
	if err != nil {
		t.Fatal(err)
	}
	if x.Modules() != 4 {
		t.Errorf("got %d modules, want 4", x.Modules())
	}
	erofs := x.modules["erofs"]
	if erofs == nil || !slices.Equal(erofs.deps, []string{"libcrc32c"}) || !slices.Equal(erofs.pre, []string{"a", "d"}) || !slices.Equal(erofs.post, []string{"b", "c"}) {
		t.Errorf("erofs: got %+v", erofs)
	}
	if m := x.modules["libcrc32c"]; m == nil || !slices.Equal(m.pre, []string{"crc32c"}) {
		t.Errorf("libcrc32c: got %+v", m)
	}
	if m := x.modules["virtio_rng"]; m == nil || m.path != "kernel/drivers/char/hw_random/virtio-rng.ko.xz" {
		t.Errorf("virtio_rng: got %+v", m)
	}
	if !x.builtin["tpm_crb"] || !x.builtin["nls_base"] {
		t.Errorf("built-in modules: got %v", x.builtin)
	}
	if got := x.Lookup("virtio:d00000004v00001AF4"); !slices.Equal(got, []string{"virtio_rng"}) {
		t.Errorf("Lookup: got %v", got)
	}

	// The soft dependency and built-in lists are optional.
	dir = writeModuleDir(t, map[string]string{DepFile: "kernel/a.ko:\n", AliasFile: ""})
	if _, err := ReadIndex(dir); err != nil {
		t.Errorf("without optional files: %v", err)
	}
}

func TestReadIndexErrors(t *testing.T) {
	for _, tc := range []struct {
		name    string
		files   map[string]string
		wantErr string
	}{
		{"no modules.dep", map[string]string{AliasFile: ""}, "modules.dep: no such file"},
		{"no modules.alias", map[string]string{DepFile: ""}, "modules.alias: no such file"},
		{"no colon", map[string]string{DepFile: "kernel/a.ko\n", AliasFile: ""}, "line 1: no colon"},
		{"not a module", map[string]string{DepFile: "kernel/a.o:\n", AliasFile: ""}, "not a module file name"},
		{"empty name", map[string]string{DepFile: "kernel/.ko:\n", AliasFile: ""}, "not a module file name"},
		{"listed twice", map[string]string{DepFile: "kernel/a.ko:\nother/a.ko:\n", AliasFile: ""}, "line 2: module a listed twice"},
		{"missing dependency", map[string]string{DepFile: "kernel/a.ko: kernel/b.ko\n", AliasFile: ""}, "module a depends on kernel/b.ko, which has no entry"},
		{"bad alias", map[string]string{DepFile: "", AliasFile: "alias x\n"}, "modules.alias: line 1"},
		{"bad softdep", map[string]string{DepFile: "kernel/a.ko:\n", AliasFile: "", SoftdepFile: "softdep a b\n"}, `"b" comes before the first pre: or post: marker`},
		{"not softdep", map[string]string{DepFile: "", AliasFile: "", SoftdepFile: "alias a b\n"}, `want "softdep MODULE ...`},
		{"alias without module", map[string]string{DepFile: "kernel/a.ko:\n", AliasFile: "alias x b\n"}, "module b has aliases but no entry in modules.dep"},
		{"bad builtin", map[string]string{DepFile: "", AliasFile: "", BuiltinFile: "kernel/x.c\n"}, "not a module file name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ReadIndex(writeModuleDir(t, tc.files))
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("got error %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}

// FuzzReadIndex checks that no index files, however malformed, crash the
// parsers, and that whatever they accept can be queried.
func FuzzReadIndex(f *testing.F) {
	f.Add("kernel/a.ko: kernel/b.ko\nkernel/b.ko:\n", "alias crc32c a\nalias pci:v*d*sv*sd*bc01sc08i02* b\n", "softdep a pre: b post: c\n", "kernel/c.ko\n", "crc32c")
	f.Add("", "alias [!]a-z]* x\n", "", "", "]")
	f.Fuzz(func(t *testing.T, dep, alias, softdep, builtin, query string) {
		dir := t.TempDir()
		for name, content := range map[string]string{DepFile: dep, AliasFile: alias, SoftdepFile: softdep, BuiltinFile: builtin} {
			if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		x, err := ReadIndex(dir)
		if err != nil {
			return
		}
		for _, name := range x.Lookup(query) {
			if name == "" {
				t.Errorf("lookup(%q) returned an empty module name", query)
			}
		}
		for name, m := range x.modules {
			for _, d := range m.deps {
				if x.modules[d] == nil {
					t.Errorf("module %s has dependency %s without an entry", name, d)
				}
			}
		}
	})
}
