package kernel

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"metropolis.dev/osbase/kmod"
)

func TestParseModinfo(t *testing.T) {
	info, err := parseModinfo([]byte("alias=a\x00\x00\x00alias=b\x00depends=x,y\x00name=n\x00empty=\x00"))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(info["alias"], []string{"a", "b"}) {
		t.Errorf("aliases: got %q", info["alias"])
	}
	if deps, err := info.depends(); err != nil || !slices.Equal(deps, []string{"x", "y"}) {
		t.Errorf("depends: got %q, %v", deps, err)
	}
	if v, err := info.get("empty"); err != nil || v != "" {
		t.Errorf("empty: got %q, %v", v, err)
	}
	if _, err := info.get("alias"); err == nil {
		t.Error("get of a repeated key succeeded")
	}
	if _, err := parseModinfo([]byte("license=GPL\x00garbage\x00")); err == nil {
		t.Error("parsed a record without =")
	}
}

func TestSelect(t *testing.T) {
	p, err := OpenPackage(writePackage(t, testModules))
	if err != nil {
		t.Fatal(err)
	}
	if p.Release != testRelease {
		t.Errorf("got release %q, want %q", p.Release, testRelease)
	}
	for _, tc := range []struct {
		name           string
		names          []string
		wantModules    []string
		wantBuiltin    []string
		wantUnresolved []string
		wantErr        string
	}{
		{
			name:        "dependencies",
			names:       []string{"virtio_pci"},
			wantModules: []string{"virtio", "virtio_pci", "virtio_pci_modern_dev", "virtio_ring"},
		},
		{
			name:        "soft dependency on an alias brings every provider",
			names:       []string{"erofs"},
			wantModules: []string{"crc32c_generic", "crc32c_intel", "erofs", "libcrc32c"},
		},
		{
			name:        "soft dependency on a built-in module",
			names:       []string{"xts"},
			wantModules: []string{"xts"},
		},
		{
			name:        "post soft dependency, dash in name",
			names:       []string{"post"},
			wantModules: []string{"post", "virtio", "virtio_blk", "virtio_ring"},
		},
		{
			name:           "unresolved soft dependency",
			names:          []string{"lost"},
			wantModules:    []string{"lost"},
			wantUnresolved: []string{"lost: no_such_thing"},
		},
		{
			name:        "built in and dashes",
			names:       []string{"tpm-crb", "crc32c-intel"},
			wantModules: []string{"crc32c_intel"},
			wantBuiltin: []string{"tpm_crb"},
		},
		{name: "unknown", names: []string{"virtio_pci", "nonexistent"}, wantErr: "nonexistent: unknown module"},
		{name: "malformed soft dependency", names: []string{"broken"}, wantErr: `"gcm" comes before the first pre: or post: marker`},
		{name: "dependency missing from package", names: []string{"orphan"}, wantErr: "depends on not_in_package"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sel, err := p.Select(tc.names)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got error %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, m := range sel.Modules {
				got = append(got, m.Name)
			}
			if !slices.Equal(got, tc.wantModules) {
				t.Errorf("got modules %v, want %v", got, tc.wantModules)
			}
			if !slices.Equal(sel.Builtin, tc.wantBuiltin) {
				t.Errorf("got built-in %v, want %v", sel.Builtin, tc.wantBuiltin)
			}
			if !slices.Equal(sel.Unresolved, tc.wantUnresolved) {
				t.Errorf("got unresolved %v, want %v", sel.Unresolved, tc.wantUnresolved)
			}
		})
	}
	if _, err := p.Select([]string{"nonexistent"}); !errors.Is(err, ErrUnknownModule) {
		t.Errorf("selecting an unknown module: got error %v, want ErrUnknownModule", err)
	}
}

func TestOpenPackageErrors(t *testing.T) {
	good := module("kernel/a.ko", "depends=")
	for _, tc := range []struct {
		name    string
		mods    []testModule
		change  func(root string) error
		wantErr string
	}{
		{
			name:    "other kernel",
			mods:    []testModule{{"kernel/a.ko", []string{"name=a", "vermagic=6.1.0-1-amd64 SMP"}}},
			wantErr: `built for kernel "6.1.0-1-amd64"`,
		},
		{
			name:    "name mismatch",
			mods:    []testModule{{"kernel/a.ko", []string{"name=b", "vermagic=" + testRelease}}},
			wantErr: `module calls itself "b"`,
		},
		{
			name:    "same name twice",
			mods:    []testModule{good, module("kernel/other/a.ko")},
			wantErr: "module a is both",
		},
		{
			name: "compressed module",
			mods: []testModule{good},
			change: func(root string) error {
				return os.WriteFile(filepath.Join(root, "lib/modules", testRelease, "kernel/b.ko.xz"), nil, 0o644)
			},
			wantErr: "compressed modules are not supported",
		},
		{
			name: "not ELF",
			mods: []testModule{good},
			change: func(root string) error {
				return os.WriteFile(filepath.Join(root, "lib/modules", testRelease, "kernel/b.ko"), []byte("text"), 0o644)
			},
			wantErr: "module kernel/b.ko",
		},
		{
			name:    "no kernel image",
			mods:    []testModule{good},
			change:  func(root string) error { return os.Remove(filepath.Join(root, "boot/vmlinuz-"+testRelease)) },
			wantErr: "finding the kernel image",
		},
		{
			name:    "two releases",
			mods:    []testModule{good},
			change:  func(root string) error { return os.Mkdir(filepath.Join(root, "lib/modules/6.1.0-98-test"), 0o755) },
			wantErr: "want exactly one kernel release",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := writePackage(t, tc.mods)
			if tc.change != nil {
				if err := tc.change(root); err != nil {
					t.Fatal(err)
				}
			}
			_, err := OpenPackage(root)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("got error %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}

// recordingLoader records the modules a kmod.Manager loads, by file.
type recordingLoader struct{ paths []string }

func (l *recordingLoader) LoadModule(path string) error {
	l.paths = append(l.paths, path)
	if _, err := os.Stat(path); err != nil {
		return err
	}
	return nil
}

func TestInstall(t *testing.T) {
	p, err := OpenPackage(writePackage(t, testModules))
	if err != nil {
		t.Fatal(err)
	}
	sel, err := p.Select([]string{"virtio_pci", "virtio_blk", "erofs", "xts", "tpm_crb"})
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "out")
	if err := p.Install(out, sel); err != nil {
		t.Fatal(err)
	}
	modDir := filepath.Join(out, "lib/modules", testRelease)
	for name, want := range map[string]string{
		kmod.DepFile: `kernel/arch/x86/crypto/crc32c-intel.ko:
kernel/crypto/crc32c_generic.ko:
kernel/crypto/xts.ko:
kernel/drivers/block/virtio_blk.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/virtio/virtio.ko: kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/virtio/virtio_pci.ko: kernel/drivers/virtio/virtio_pci_modern_dev.ko kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/virtio/virtio_pci_modern_dev.ko:
kernel/drivers/virtio/virtio_ring.ko:
kernel/fs/erofs/erofs.ko: kernel/lib/libcrc32c.ko
kernel/lib/libcrc32c.ko:
`,
		kmod.AliasFile: `# Aliases of the installed modules, from their .modinfo sections.
alias crypto-crc32c crc32c_generic
alias crc32c crc32c_generic
alias crypto-crc32c crc32c_intel
alias crc32c crc32c_intel
alias cpu:type:x86,ven*fam*mod*:feature:*0094* crc32c_intel
alias fs-erofs erofs
alias virtio:d00000002v* virtio_blk
alias pci:v00001AF4d*sv*sd*bc*sc*i* virtio_pci
`,
		kmod.SoftdepFile: `# Soft dependencies of the installed modules, from their .modinfo sections.
softdep libcrc32c pre: crc32c
softdep xts pre: ecb
`,
		kmod.BuiltinFile: "kernel/crypto/ecb.ko\nkernel/drivers/char/tpm/tpm_crb.ko\n",
	} {
		got, err := os.ReadFile(filepath.Join(modDir, name))
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != want {
			t.Errorf("%s: got\n%s\nwant\n%s", name, got, want)
		}
	}
	if got, err := os.ReadFile(filepath.Join(out, VmlinuzFile)); err != nil || string(got) != "kernel image" {
		t.Errorf("vmlinuz holds %q (%v)", got, err)
	}
	for _, m := range sel.Modules {
		want, _ := os.ReadFile(p.modulePath(m.Path))
		got, err := os.ReadFile(filepath.Join(modDir, m.Path))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("module %s not copied (%v)", m.Path, err)
		}
	}

	// The node's module loader can use the result.
	loader := &recordingLoader{}
	mgr, err := kmod.NewManagerFor(modDir, loader)
	if err != nil {
		t.Fatal(err)
	}
	if err := mgr.Load("erofs"); err != nil {
		t.Fatal(err)
	}
	if _, err := mgr.LoadForModalias("pci:v00001AF4d00001000sv00001AF4sd00000001bc02sc00i00"); err != nil {
		t.Fatal(err)
	}
	var loaded []string
	for _, p := range loader.paths {
		rel, _ := filepath.Rel(modDir, p)
		loaded = append(loaded, rel)
	}
	want := []string{
		"kernel/crypto/crc32c_generic.ko", "kernel/arch/x86/crypto/crc32c-intel.ko", "kernel/lib/libcrc32c.ko", "kernel/fs/erofs/erofs.ko",
		"kernel/drivers/virtio/virtio_ring.ko", "kernel/drivers/virtio/virtio.ko", "kernel/drivers/virtio/virtio_pci_modern_dev.ko", "kernel/drivers/virtio/virtio_pci.ko",
	}
	if !slices.Equal(loaded, want) {
		t.Errorf("loaded\n%q\nwant\n%q", loaded, want)
	}

	if err := p.Install(out, sel); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Errorf("installing into a non-empty directory: got error %v", err)
	}
}

func TestInstallWithoutModules(t *testing.T) {
	p, err := OpenPackage(writePackage(t, testModules))
	if err != nil {
		t.Fatal(err)
	}
	sel, err := p.Select(nil)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "out")
	if err := p.Install(out, sel); err != nil {
		t.Fatalf("installing a kernel with no modules: %v", err)
	}
	index, err := kmod.ReadIndex(filepath.Join(out, "lib/modules", testRelease))
	if err != nil {
		t.Fatalf("reading the installed index: %v", err)
	}
	if n := index.Modules(); n != 0 {
		t.Errorf("index holds %d modules, want 0", n)
	}
}

func TestReadModuleList(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     []string
		wantErr  string
	}{
		{name: "comments", in: "# virtual hardware\nvirtio_pci\n\n  virtio-blk  # block\n", want: []string{"virtio_pci", "virtio_blk"}},
		{name: "empty", in: "", want: nil},
		{name: "two per line", in: "a b\n", wantErr: ":1: want one module name"},
		{name: "twice", in: "a_b\na-b\n", wantErr: ":2: module a_b listed twice"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "modules.txt")
			if err := os.WriteFile(path, []byte(tc.in), 0o644); err != nil {
				t.Fatal(err)
			}
			got, err := ReadModuleList(path)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got error %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}
