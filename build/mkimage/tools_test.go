package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"metropolis.dev/build/kernel"
	"metropolis.dev/osbase/kmod"
	"metropolis.dev/osbase/structfs"
)

// TestToolsRun shows that the system image's tools have every library they
// load: it places them as the image build does, writes that tree to a
// directory, and runs mkfs.xfs chrooted into it, where nothing of the
// build machine is visible (not even an ld.so.cache, as on the node). The
// file system it makes must then mount.
func TestToolsRun(t *testing.T) {
	requireRoot(t)
	var tree structfs.Tree
	if err := placeTools(&tree, toolsRoot(t)); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := writeTree(&tree, dir); err != nil {
		t.Fatal(err)
	}
	runMkfs(t, dir, dir, "/xfs.img")
}

// TestToolsRunInSystemImage does the same as TestToolsRun in the system
// image itself, as system writes it, mounted read-only with EROFS, with a
// writable directory on its /tmp for the new file system's image.
func TestToolsRunInSystemImage(t *testing.T) {
	requireRoot(t)
	if fs, err := os.ReadFile("/proc/filesystems"); err != nil || !strings.Contains(string(fs), "\terofs\n") {
		t.Skip("the build machine's kernel has no EROFS (modprobe erofs)")
	}
	work := t.TempDir()
	core := filepath.Join(work, "core")
	if err := os.WriteFile(core, []byte("not a real core"), 0o755); err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(work, "system.img")
	b := &builder{repo: filepath.Join("..", ".."), work: work}
	_, kernelDir, err := b.kernel(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	size, _, _, err := b.system(core, toolsRoot(t), kernelDir, img)
	if err != nil {
		t.Fatal(err)
	}
	mnt := t.TempDir()
	mount(t, mnt, "-t", "erofs", "-o", fmt.Sprintf("ro,loop,sizelimit=%d", size), img, mnt)
	checkNodeModules(t, mnt)
	tmp := t.TempDir()
	mount(t, filepath.Join(mnt, "tmp"), "--bind", tmp, filepath.Join(mnt, "tmp"))
	runMkfs(t, mnt, tmp, "/tmp/xfs.img")
}

// checkNodeModules checks that the system tree at root has a module index
// that resolves every module the node needs, with the module files present.
func checkNodeModules(t *testing.T, root string) {
	t.Helper()
	names, err := kernel.ReadModuleList(filepath.Join("..", "..", kernel.ModuleListFile))
	if err != nil {
		t.Fatal(err)
	}
	dirs, err := filepath.Glob(filepath.Join(root, "lib", "modules", "*"))
	if err != nil || len(dirs) != 1 {
		t.Fatalf("system image has module directories %v (%v), want one", dirs, err)
	}
	loader := &existingFiles{}
	mgr, err := kmod.NewManagerFor(dirs[0], loader)
	if err != nil {
		t.Fatalf("reading the system image's module index: %v", err)
	}
	for _, name := range names {
		if err := mgr.Load(name); err != nil {
			t.Errorf("module %s: %v", name, err)
		}
	}
	if len(loader.missing) > 0 {
		t.Errorf("the index names modules missing from the image: %v", loader.missing)
	}
}

// existingFiles is a kmod.Loader that only checks that each module file
// exists: the build machine cannot load the node's kernel's modules.
type existingFiles struct{ missing []string }

func (l *existingFiles) LoadModule(path string) error {
	if _, err := os.Stat(path); err != nil {
		l.missing = append(l.missing, path)
	}
	return nil
}

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("this test needs root for chroot and mount (make test runs as root)")
	}
}

// toolsRoot returns the unpacked packages of the tools.
func toolsRoot(t *testing.T) string {
	t.Helper()
	root, err := unpackTools(t.Context(), filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// mount runs mount with args and unmounts dir when the test ends.
func mount(t *testing.T, dir string, args ...string) {
	t.Helper()
	if out, err := exec.Command("mount", args...).CombinedOutput(); err != nil {
		t.Fatalf("mount %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("unmounting %s: %v\n%s", dir, err, out)
		}
	})
}

// runMkfs makes an XFS file system of 300 MiB with /bin/mkfs.xfs, run
// chrooted into root, in a sparse file at name inside the chroot, which is
// hostDir's file of the same base name, and mounts it.
func runMkfs(t *testing.T, root, hostDir, name string) {
	t.Helper()
	img := filepath.Join(hostDir, filepath.Base(name))
	f, err := os.Create(img)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(300 << 20); err != nil {
		t.Fatal(err)
	}
	f.Close()
	cmd := exec.Command("chroot", root, "/bin/mkfs.xfs", "-f", name)
	cmd.Env = []string{}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %v\n%s", cmd, err, out)
	}
	t.Logf("%s", out)

	mnt := t.TempDir()
	mount(t, mnt, "-o", "loop", "-t", "xfs", img, mnt)
	var st unix.Statfs_t
	if err := unix.Statfs(mnt, &st); err != nil {
		t.Fatal(err)
	}
	if st.Type != unix.XFS_SUPER_MAGIC {
		t.Fatalf("mounted file system has type %#x, want XFS", st.Type)
	}
	if err := os.WriteFile(filepath.Join(mnt, "hello"), []byte("hello"), 0o644); err != nil {
		t.Fatalf("writing to the new file system: %v", err)
	}
}

// TestToolsFiles checks what placeTools puts into the image: mkfs.xfs and
// its libraries at the paths the loader looks in.
func TestToolsFiles(t *testing.T) {
	var tree structfs.Tree
	if err := placeTools(&tree, toolsRoot(t)); err != nil {
		t.Fatal(err)
	}
	var got []string
	err := tree.Walk(func(e structfs.Entry) error {
		switch e.Type {
		case structfs.TypeFile:
			got = append(got, fmt.Sprintf("%s %o", e.Path, e.Mode))
		case structfs.TypeSymlink:
			got = append(got, e.Path+" -> "+e.Target)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"/bin/mkfs.xfs 555",
		"/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2 755",
		"/lib/x86_64-linux-gnu/libc.so.6 755",
		"/lib64/ld-linux-x86-64.so.2 -> /lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
		"/usr/lib/x86_64-linux-gnu/libblkid.so.1 -> libblkid.so.1.1.0",
		"/usr/lib/x86_64-linux-gnu/libblkid.so.1.1.0 644",
		"/usr/lib/x86_64-linux-gnu/libinih.so.1 -> libinih.so.55",
		"/usr/lib/x86_64-linux-gnu/libinih.so.55 644",
		"/usr/lib/x86_64-linux-gnu/liburcu.so.8 -> liburcu.so.8.0.0",
		"/usr/lib/x86_64-linux-gnu/liburcu.so.8.0.0 644",
		"/usr/lib/x86_64-linux-gnu/libuuid.so.1 -> libuuid.so.1.3.0",
		"/usr/lib/x86_64-linux-gnu/libuuid.so.1.3.0 644",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("placed\n\t%s\nwant\n\t%s", strings.Join(got, "\n\t"), strings.Join(want, "\n\t"))
	}
}

// writeTree writes the directories, files and links of t below dir.
func writeTree(t *structfs.Tree, dir string) error {
	return t.Walk(func(e structfs.Entry) error {
		p := filepath.Join(dir, filepath.FromSlash(e.Path))
		switch e.Type {
		case structfs.TypeDir:
			if e.Path == "/" {
				return nil
			}
			return os.Mkdir(p, e.Mode)
		case structfs.TypeSymlink:
			return os.Symlink(e.Target, p)
		case structfs.TypeFile:
			f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, e.Mode)
			if err != nil {
				return err
			}
			if err := structfs.CopyBlob(f, e.Blob); err != nil {
				f.Close()
				return err
			}
			return f.Close()
		}
		return fmt.Errorf("%s: unexpected %v", e.Path, e.Type)
	})
}
