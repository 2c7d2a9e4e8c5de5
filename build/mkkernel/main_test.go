package main

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"metropolis.dev/build/kernel"
	"metropolis.dev/osbase/kmod"
)

// recordingLoader stands in for finit_module, recording the module files
// a kmod.Manager loads.
type recordingLoader struct {
	dir   string
	names []string
}

func (l *recordingLoader) LoadModule(path string) error {
	if _, err := os.Stat(path); err != nil {
		return err
	}
	rel, err := filepath.Rel(l.dir, path)
	if err != nil {
		return err
	}
	l.names = append(l.names, rel)
	return nil
}

// TestBuild builds the kernel tree from the pinned Debian package and the
// committed module list, and checks that the node's module loader can load
// every listed module and the drivers of qemu's virtio devices from it. It
// fetches and unpacks the package like the build does: a 70 MB download
// and 400 MB of unpacked files on the first run on a machine, cached for
// later runs.
func TestBuild(t *testing.T) {
	pins := filepath.Join("..", "..", "third_party", "linux", "pins.txt")
	modules := filepath.Join("..", "..", "third_party", "linux", "modules.txt")
	out := filepath.Join(t.TempDir(), "out")
	sel, release, err := build(t.Context(), pins, modules, out)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("kernel %s, %d modules, %d bytes; built in: %v; unresolved: %v", release, len(sel.Modules), sel.Size(), sel.Builtin, sel.Unresolved)
	if len(sel.Unresolved) > 0 {
		t.Errorf("soft dependencies name nothing in the package: %v", sel.Unresolved)
	}

	// An x86 bzImage carries the magic "HdrS" at offset 0x202.
	vmlinuz, err := os.ReadFile(filepath.Join(out, kernel.VmlinuzFile))
	if err != nil {
		t.Fatal(err)
	}
	if len(vmlinuz) < 0x206 || !bytes.Equal(vmlinuz[0x202:0x206], []byte("HdrS")) {
		t.Error("vmlinuz is not a bzImage")
	}

	modDir := filepath.Join(out, "lib", "modules", release)
	loader := &recordingLoader{dir: modDir}
	mgr, err := kmod.NewManagerFor(modDir, loader)
	if err != nil {
		t.Fatal(err)
	}
	names, err := kernel.ReadModuleList(modules)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range names {
		if err := mgr.Load(name); err != nil {
			t.Errorf("Load(%s): %v", name, err)
		}
	}
	// libcrc32c needs crc32c, which only its soft dependency names.
	crc := slices.Index(loader.names, "kernel/crypto/crc32c_generic.ko")
	lib := slices.Index(loader.names, "kernel/lib/libcrc32c.ko")
	if crc < 0 || lib < 0 || crc > lib {
		t.Errorf("crc32c_generic (at %d) not loaded before libcrc32c (at %d)", crc, lib)
	}

	for _, tc := range []struct {
		modalias string
		want     []string
	}{
		{"pci:v00001AF4d00001041sv00001AF4sd00001100bc02sc00i00", []string{"virtio_pci"}},
		{"virtio:d00000001v00001AF4", []string{"virtio_net"}},
		{"virtio:d00000002v00001AF4", []string{"virtio_blk"}},
		{"virtio:d00000004v00001AF4", []string{"virtio_rng"}},
		{"pci:v00001B36d00000010sv00001AF4sd00001100bc01sc08i02", []string{"nvme"}},
		{"pci:v00008086d00002922sv00001AF4sd00001100bc01sc06i01", []string{"ahci"}},
		{"pci:v00008086d000010D3sv00008086sd00000000bc02sc00i00", []string{"e1000e"}},
	} {
		got, err := mgr.LoadForModalias(tc.modalias)
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("LoadForModalias(%s): got %v, %v; want %v", tc.modalias, got, err, tc.want)
		}
	}
}
