package kmod

import (
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"golang.org/x/sys/unix"
)

// fakeLoader records which modules it was asked to load, by name, and
// fails for those in errs.
type fakeLoader struct {
	mu     sync.Mutex
	dir    string
	loaded []string
	errs   map[string]error
}

func (f *fakeLoader) LoadModule(path string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	rel, err := filepath.Rel(f.dir, path)
	if err != nil || strings.HasPrefix(rel, "..") {
		return errors.New("module path outside the module directory: " + path)
	}
	name, err := moduleName(rel)
	if err != nil {
		return err
	}
	f.loaded = append(f.loaded, name)
	return f.errs[name]
}

// A module directory shaped like the one the image build writes for
// Debian's kernel, with one invented module pair for soft dependency
// cycles.
var testModuleDir = map[string]string{
	DepFile: `kernel/drivers/virtio/virtio_ring.ko:
kernel/drivers/virtio/virtio.ko: kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/virtio/virtio_pci_modern_dev.ko:
kernel/drivers/virtio/virtio_pci_legacy_dev.ko:
kernel/drivers/virtio/virtio_pci.ko: kernel/drivers/virtio/virtio_pci_modern_dev.ko kernel/drivers/virtio/virtio_pci_legacy_dev.ko kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/block/virtio_blk.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/net/virtio_net.ko: kernel/drivers/net/net_failover.ko kernel/net/core/failover.ko kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/net/net_failover.ko: kernel/net/core/failover.ko
kernel/net/core/failover.ko:
kernel/fs/erofs/erofs.ko: kernel/lib/libcrc32c.ko
kernel/lib/libcrc32c.ko:
kernel/crypto/crc32c_generic.ko:
kernel/arch/x86/crypto/crc32c-intel.ko:
kernel/fs/fat/fat.ko:
kernel/fs/fat/vfat.ko: kernel/fs/fat/fat.ko
kernel/fs/nls/nls_ascii.ko:
kernel/test/ping.ko:
kernel/test/pong.ko:
`,
	AliasFile: `alias pci:v00001AF4d*sv*sd*bc*sc*i* virtio_pci
alias virtio:d00000002v* virtio_blk
alias virtio:d00000001v* virtio_net
alias crypto-crc32c crc32c_intel
alias crc32c crc32c_intel
alias crypto-crc32c crc32c_generic
alias crc32c crc32c_generic
`,
	SoftdepFile: `softdep libcrc32c pre: crc32c
softdep vfat post: nls_ascii
softdep ping pre: pong
softdep pong pre: ping
softdep fat pre: not_shipped
`,
	BuiltinFile: "kernel/fs/nls/nls_base.ko\nkernel/drivers/char/tpm/tpm_crb.ko\n",
}

func newTestManager(t *testing.T, errs map[string]error) (*Manager, *fakeLoader) {
	t.Helper()
	dir := writeModuleDir(t, testModuleDir)
	loader := &fakeLoader{dir: dir, errs: errs}
	m, err := NewManagerFor(dir, loader)
	if err != nil {
		t.Fatal(err)
	}
	return m, loader
}

func TestLoad(t *testing.T) {
	for _, tc := range []struct {
		name     string
		load     string
		errs     map[string]error
		want     []string // the loader's calls, in order
		wantErr  string
		wantErrs []error
	}{
		{
			name: "dependencies first",
			load: "virtio_pci",
			want: []string{"virtio_ring", "virtio", "virtio_pci_legacy_dev", "virtio_pci_modern_dev", "virtio_pci"},
		},
		{
			name: "dash and underscore are the same",
			load: "virtio-blk",
			want: []string{"virtio_ring", "virtio", "virtio_blk"},
		},
		{
			name: "indirect dependencies",
			load: "virtio_net",
			want: []string{"virtio_ring", "virtio", "failover", "net_failover", "virtio_net"},
		},
		{
			name: "already loaded by someone else",
			load: "virtio_blk",
			errs: map[string]error{"virtio": unix.EEXIST},
			want: []string{"virtio_ring", "virtio", "virtio_blk"},
		},
		{
			name: "soft dependency by alias, one provider enough",
			load: "erofs",
			errs: map[string]error{"crc32c_intel": unix.ENODEV},
			want: []string{"crc32c_generic", "crc32c_intel", "libcrc32c", "erofs"},
		},
		{
			name:     "soft dependency without any provider loading",
			load:     "erofs",
			errs:     map[string]error{"crc32c_intel": unix.ENODEV, "crc32c_generic": unix.ENOEXEC},
			want:     []string{"crc32c_generic", "crc32c_intel"},
			wantErr:  "loading crc32c before libcrc32c",
			wantErrs: []error{unix.ENODEV, unix.ENOEXEC},
		},
		{
			name: "post soft dependency, missing pre skipped",
			load: "vfat",
			want: []string{"fat", "vfat", "nls_ascii"},
		},
		{
			name: "soft dependency cycle",
			load: "ping",
			want: []string{"pong", "ping"},
		},
		{
			name: "alias as name",
			load: "crc32c",
			want: []string{"crc32c_generic", "crc32c_intel"},
		},
		{
			name: "built in",
			load: "tpm_crb",
			want: nil,
		},
		{
			name:     "unknown",
			load:     "nonexistent",
			wantErr:  "nonexistent: no such module",
			wantErrs: []error{ErrNotFound},
		},
		{
			name:     "dependency fails",
			load:     "virtio_blk",
			errs:     map[string]error{"virtio": unix.EPERM},
			want:     []string{"virtio_ring", "virtio"},
			wantErr:  "loading virtio, needed by virtio_blk",
			wantErrs: []error{unix.EPERM},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, loader := newTestManager(t, tc.errs)
			err := m.Load(tc.load)
			if tc.wantErr == "" && err != nil {
				t.Fatalf("Load(%q): %v", tc.load, err)
			}
			if tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("Load(%q): got error %v, want one containing %q", tc.load, err, tc.wantErr)
			}
			for _, want := range tc.wantErrs {
				if !errors.Is(err, want) {
					t.Errorf("Load(%q): error %v does not match %v", tc.load, err, want)
				}
			}
			if !slices.Equal(loader.loaded, tc.want) {
				t.Errorf("Load(%q) loaded %v, want %v", tc.load, loader.loaded, tc.want)
			}
		})
	}
}

func TestLoadRemembersLoadedModules(t *testing.T) {
	m, loader := newTestManager(t, map[string]error{"virtio_ring": unix.EPERM})
	if err := m.Load("virtio_blk"); err == nil {
		t.Fatal("Load succeeded although a dependency failed")
	}
	// A failure is not remembered: the next attempt retries.
	delete(loader.errs, "virtio_ring")
	if err := m.Load("virtio_blk"); err != nil {
		t.Fatal(err)
	}
	if err := m.Load("virtio_net"); err != nil {
		t.Fatal(err)
	}
	if err := m.Load("virtio_blk"); err != nil {
		t.Fatal(err)
	}
	want := []string{"virtio_ring", "virtio_ring", "virtio", "virtio_blk", "failover", "net_failover", "virtio_net"}
	if !slices.Equal(loader.loaded, want) {
		t.Errorf("loaded %v, want %v", loader.loaded, want)
	}
}

func TestLoadConcurrently(t *testing.T) {
	m, loader := newTestManager(t, nil)
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for range 8 {
		for _, name := range []string{"virtio_blk", "virtio_net"} {
			wg.Go(func() { errs <- m.Load(name) })
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	slices.Sort(loader.loaded)
	want := []string{"failover", "net_failover", "virtio", "virtio_blk", "virtio_net", "virtio_ring"}
	if !slices.Equal(loader.loaded, want) {
		t.Errorf("loaded %v, want each of %v once", loader.loaded, want)
	}
}

func TestLoadDependencyCycle(t *testing.T) {
	dir := writeModuleDir(t, map[string]string{
		DepFile:   "kernel/a.ko: kernel/b.ko\nkernel/b.ko: kernel/a.ko\n",
		AliasFile: "",
	})
	m, err := NewManagerFor(dir, &fakeLoader{dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Load("a"); err == nil || !strings.Contains(err.Error(), "depends on itself") {
		t.Errorf("got error %v, want a dependency cycle", err)
	}
}

func TestLoadForModalias(t *testing.T) {
	for _, tc := range []struct {
		name       string
		modalias   string
		errs       map[string]error
		wantLoaded []string
		wantCalls  []string
		wantErr    error
	}{
		{
			name:       "virtio PCI device",
			modalias:   "pci:v00001AF4d00001000sv00001AF4sd00000001bc02sc00i00",
			wantLoaded: []string{"virtio_pci"},
			wantCalls:  []string{"virtio_ring", "virtio", "virtio_pci_legacy_dev", "virtio_pci_modern_dev", "virtio_pci"},
		},
		{
			name:       "virtio block device",
			modalias:   "virtio:d00000002v00001AF4",
			wantLoaded: []string{"virtio_blk"},
			wantCalls:  []string{"virtio_ring", "virtio", "virtio_blk"},
		},
		{
			name:     "no driver",
			modalias: "pci:v00001234d00001111sv00001AF4sd00001100bc03sc00i00",
		},
		{
			name:       "several drivers, one failing",
			modalias:   "crc32c",
			errs:       map[string]error{"crc32c_intel": unix.ENODEV},
			wantLoaded: []string{"crc32c_generic"},
			wantCalls:  []string{"crc32c_generic", "crc32c_intel"},
			wantErr:    unix.ENODEV,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, loader := newTestManager(t, tc.errs)
			loaded, err := m.LoadForModalias(tc.modalias)
			if tc.wantErr == nil && err != nil {
				t.Fatal(err)
			}
			if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Errorf("got error %v, want %v", err, tc.wantErr)
			}
			if !slices.Equal(loaded, tc.wantLoaded) {
				t.Errorf("got loaded modules %v, want %v", loaded, tc.wantLoaded)
			}
			if !slices.Equal(loader.loaded, tc.wantCalls) {
				t.Errorf("loader loaded %v, want %v", loader.loaded, tc.wantCalls)
			}
		})
	}
}
