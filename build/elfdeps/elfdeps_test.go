package elfdeps

import (
	"bytes"
	"context"
	"math/rand/v2"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"metropolis.dev/build/debian"
)

// mkfs is the program the tests resolve, in the pinned xfsprogs package.
const mkfs = "sbin/mkfs.xfs"

var pinnedRoot = sync.OnceValues(func() (string, error) {
	pins, err := debian.ReadPins(filepath.Join("..", "..", "third_party", "xfsprogs", debian.PinFile))
	if err != nil {
		return "", err
	}
	return debian.UnpackPinned(context.Background(), pins)
})

// root returns the pinned xfsprogs packages, unpacked together (shared,
// not to be modified).
func root(t *testing.T) string {
	t.Helper()
	dir, err := pinnedRoot()
	if err != nil {
		t.Fatalf("unpacking the pinned packages: %v", err)
	}
	return dir
}

// TestMkfsXFS checks the closure of mkfs.xfs against the pinned dynamic
// loader itself: run in a chroot of the unpacked packages, where nothing
// from the build machine is visible and there is no ld.so.cache (as on the
// node), ld.so --list prints where it finds each library.
func TestMkfsXFS(t *testing.T) {
	dir := root(t)
	c, err := Resolve(dir, mkfs)
	if err != nil {
		t.Fatal(err)
	}

	var got []string
	for _, p := range c.Libs {
		got = append(got, "/"+p)
	}
	slices.Sort(got)
	got = slices.Compact(got)
	want := loaderList(t, dir, "/"+mkfs)
	if !slices.Equal(got, want) {
		t.Errorf("Resolve finds\n\t%s\nld.so --list in a chroot\n\t%s", strings.Join(got, "\n\t"), strings.Join(want, "\n\t"))
	}
	if c.Interp != "lib64/ld-linux-x86-64.so.2" {
		t.Errorf("Interp = %q", c.Interp)
	}
	checkMinimal(t, c)
	for _, f := range c.Files {
		if f.Target != "" {
			t.Logf("%s -> %s", f.Path, f.Target)
		} else {
			fi, err := os.Stat(filepath.Join(dir, f.Path))
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s (%d bytes)", f.Path, fi.Size())
		}
	}
}

// loaderListRE matches a library line of ld.so --list: "NAME => PATH
// (ADDRESS)", or "PATH (ADDRESS)" for the loader itself.
var loaderListRE = regexp.MustCompile(`^\s*(?:\S+ => )?(/\S+) \(0x[0-9a-f]+\)$`)

// loaderList returns the sorted paths of the files ld.so loads for prog,
// run in a chroot of root.
func loaderList(t *testing.T, root, prog string) []string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("the loader oracle needs chroot, which needs root (make test runs as root)")
	}
	cmd := exec.Command("chroot", root, "/lib64/ld-linux-x86-64.so.2", "--list", prog)
	cmd.Env = []string{}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %v\n%s", cmd, err, out)
	}
	var paths []string
	for line := range strings.Lines(string(out)) {
		line = strings.TrimRight(line, "\n")
		if strings.Contains(line, "linux-vdso.so") {
			continue
		}
		m := loaderListRE.FindStringSubmatch(line)
		if m == nil {
			t.Fatalf("unexpected line from ld.so --list: %q\n%s", line, out)
		}
		paths = append(paths, m[1])
	}
	slices.Sort(paths)
	return slices.Compact(paths)
}

// checkMinimal checks that c.Files are exactly the interpreter, the
// libraries and what their links lead to, and nothing else.
func checkMinimal(t *testing.T, c *Closure) {
	t.Helper()
	files := map[string]File{}
	for _, f := range c.Files {
		if _, ok := files[f.Path]; ok {
			t.Errorf("%s listed twice", f.Path)
		}
		files[f.Path] = f
	}
	// follow marks the links on the way to p and the file it leads to,
	// resolving links of directories too.
	reached := map[string]bool{}
	follow := func(p string) {
		done, todo := "", strings.Split(p, "/")
		for hops := 0; len(todo) > 0; {
			c := todo[0]
			todo = todo[1:]
			cur := path.Join(done, c)
			if c == ".." {
				done = path.Dir(done)
				continue
			}
			f, ok := files[cur]
			if !ok || f.Target == "" {
				done = cur
				continue
			}
			if hops++; hops > maxLinks {
				t.Errorf("%s: link loop", p)
				return
			}
			reached[cur] = true
			if path.IsAbs(f.Target) {
				done = ""
			}
			todo = append(strings.Split(strings.TrimPrefix(f.Target, "/"), "/"), todo...)
		}
		if f, ok := files[done]; !ok || f.Target != "" {
			t.Errorf("%s leads to %s, which is not a file in Files", p, done)
			return
		}
		reached[done] = true
	}
	if c.Interp != "" {
		follow(c.Interp)
	}
	for _, p := range c.Libs {
		follow(p)
	}
	for p := range files {
		if !reached[p] {
			t.Errorf("%s is in Files but nothing leads to it", p)
		}
	}
}

// fakeRoot returns a new root with the given files copied from the pinned
// packages (symbolic links as links).
func fakeRoot(t *testing.T, paths ...string) string {
	t.Helper()
	src := root(t)
	dst := t.TempDir()
	for _, p := range paths {
		from, to := filepath.Join(src, p), filepath.Join(dst, p)
		if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
			t.Fatal(err)
		}
		fi, err := os.Lstat(from)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode()&os.ModeSymlink != 0 {
			target, err := os.Readlink(from)
			if err != nil {
				t.Fatal(err)
			}
			mustSymlink(t, target, to)
			continue
		}
		b, err := os.ReadFile(from)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(to, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

func mustSymlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}

// loaderFiles are the files of the loader and libc in the pinned packages.
var loaderFiles = []string{
	"lib64/ld-linux-x86-64.so.2",
	"lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
	"lib/x86_64-linux-gnu/libc.so.6",
}

// withoutLibs returns mkfs.xfs and the files of its closure, except those
// given, for a fake root in which a test replaces them.
func withoutLibs(except ...string) []string {
	all := []string{
		mkfs,
		"usr/lib/x86_64-linux-gnu/libinih.so.1",
		"usr/lib/x86_64-linux-gnu/libinih.so.55",
		"usr/lib/x86_64-linux-gnu/liburcu.so.8",
		"usr/lib/x86_64-linux-gnu/liburcu.so.8.0.0",
		"usr/lib/x86_64-linux-gnu/libuuid.so.1",
		"usr/lib/x86_64-linux-gnu/libuuid.so.1.3.0",
		"usr/lib/x86_64-linux-gnu/libblkid.so.1",
		"usr/lib/x86_64-linux-gnu/libblkid.so.1.1.0",
	}
	all = append(all, loaderFiles...)
	return slices.DeleteFunc(all, func(p string) bool { return slices.Contains(except, p) })
}

func TestFakeRootComplete(t *testing.T) {
	dir := fakeRoot(t, withoutLibs()...)
	c, err := Resolve(dir, mkfs)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Files) != len(withoutLibs())-1 {
		t.Errorf("got %d files, want %d: %v", len(c.Files), len(withoutLibs())-1, c.Files)
	}
	checkMinimal(t, c)
}

func TestMissingLibrary(t *testing.T) {
	dir := fakeRoot(t, withoutLibs("usr/lib/x86_64-linux-gnu/libblkid.so.1", "usr/lib/x86_64-linux-gnu/libblkid.so.1.1.0")...)
	_, err := Resolve(dir, mkfs)
	if err == nil || !strings.Contains(err.Error(), "library libblkid.so.1, needed by sbin/mkfs.xfs: not found") {
		t.Fatalf("got %v, want an error naming libblkid.so.1 and mkfs.xfs", err)
	}
}

func TestMissingLibraryOfLibrary(t *testing.T) {
	// A copy of libinih that needs a library nobody has: rename its
	// DT_NEEDED libc.so.6 to libx.so.6 in the string table.
	dir := fakeRoot(t, withoutLibs("usr/lib/x86_64-linux-gnu/libinih.so.55")...)
	b, err := os.ReadFile(filepath.Join(root(t), "usr/lib/x86_64-linux-gnu/libinih.so.55"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Count(b, []byte("\x00libc.so.6\x00")) != 1 {
		t.Skip("libinih's string table is not as expected")
	}
	b = bytes.Replace(b, []byte("\x00libc.so.6\x00"), []byte("\x00libx.so.6\x00"), 1)
	if err := os.WriteFile(filepath.Join(dir, "usr/lib/x86_64-linux-gnu/libinih.so.55"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = Resolve(dir, mkfs)
	if err == nil || !strings.Contains(err.Error(), "library libx.so.6, needed by usr/lib/x86_64-linux-gnu/libinih.so.1: not found") {
		t.Fatalf("got %v, want an error naming libx.so.6 and libinih", err)
	}
}

func TestSymlinkOutOfRoot(t *testing.T) {
	for _, target := range []string{
		"../../../../lib/x86_64-linux-gnu/libuuid.so.1.3.0",
		"../../../usr/../../etc/libuuid.so.1.3.0",
	} {
		dir := fakeRoot(t, withoutLibs("usr/lib/x86_64-linux-gnu/libuuid.so.1")...)
		mustSymlink(t, target, filepath.Join(dir, "usr/lib/x86_64-linux-gnu/libuuid.so.1"))
		_, err := Resolve(dir, mkfs)
		if err == nil || !strings.Contains(err.Error(), "leads out of the root") {
			t.Errorf("link to %s: got %v, want an error about leaving the root", target, err)
		}
	}
}

func TestSymlinks(t *testing.T) {
	// An absolute link stays in the root; links through directories and
	// chains of links are kept, so the loader can follow them in the image.
	dir := fakeRoot(t, withoutLibs("usr/lib/x86_64-linux-gnu/libuuid.so.1", "usr/lib/x86_64-linux-gnu/libuuid.so.1.3.0")...)
	b, err := os.ReadFile(filepath.Join(root(t), "usr/lib/x86_64-linux-gnu/libuuid.so.1.3.0"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "opt/real"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "opt/real/uuid"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	mustSymlink(t, "real", filepath.Join(dir, "opt/dir"))
	mustSymlink(t, "/opt/dir/uuid", filepath.Join(dir, "usr/lib/x86_64-linux-gnu/libuuid.so.1.3.0"))
	mustSymlink(t, "libuuid.so.1.3.0", filepath.Join(dir, "usr/lib/x86_64-linux-gnu/libuuid.so.1"))
	c, err := Resolve(dir, mkfs)
	if err != nil {
		t.Fatal(err)
	}
	checkMinimal(t, c)
	for _, want := range []File{
		{Path: "usr/lib/x86_64-linux-gnu/libuuid.so.1", Target: "libuuid.so.1.3.0"},
		{Path: "usr/lib/x86_64-linux-gnu/libuuid.so.1.3.0", Target: "/opt/dir/uuid"},
		{Path: "opt/dir", Target: "real"},
		{Path: "opt/real/uuid"},
	} {
		if !slices.Contains(c.Files, want) {
			t.Errorf("Files lack %+v: %v", want, c.Files)
		}
	}
}

func TestSymlinkLoop(t *testing.T) {
	dir := fakeRoot(t, withoutLibs("usr/lib/x86_64-linux-gnu/libuuid.so.1")...)
	mustSymlink(t, "libuuid.so.1", filepath.Join(dir, "usr/lib/x86_64-linux-gnu/libuuid.so.1"))
	_, err := Resolve(dir, mkfs)
	if err == nil || !strings.Contains(err.Error(), "too many levels of symbolic links") {
		t.Fatalf("got %v, want a link loop error", err)
	}
}

func TestProgramOutOfRoot(t *testing.T) {
	if _, err := Resolve(t.TempDir(), "../etc/passwd"); err == nil || !strings.Contains(err.Error(), "leads out of the root") {
		t.Fatalf("got %v, want an error about leaving the root", err)
	}
}

func TestNotELF(t *testing.T) {
	dir := fakeRoot(t, withoutLibs("usr/lib/x86_64-linux-gnu/libinih.so.55")...)
	if err := os.WriteFile(filepath.Join(dir, "usr/lib/x86_64-linux-gnu/libinih.so.55"), []byte("INPUT(libinih.a)\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Resolve(dir, mkfs)
	if err == nil || !strings.Contains(err.Error(), "libinih.so.55") {
		t.Fatalf("got %v, want an error naming the broken library", err)
	}
}

// TestMalformed resolves truncated and corrupted copies of mkfs.xfs: each
// must give a result or an error, never a panic.
func TestMalformed(t *testing.T) {
	orig, err := os.ReadFile(filepath.Join(root(t), mkfs))
	if err != nil {
		t.Fatal(err)
	}
	dir := fakeRoot(t, withoutLibs(mkfs)...)
	prog := filepath.Join(dir, mkfs)
	if err := os.MkdirAll(filepath.Dir(prog), 0o755); err != nil {
		t.Fatal(err)
	}
	try := func(b []byte) error {
		if err := os.WriteFile(prog, b, 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := Resolve(dir, mkfs)
		return err
	}
	for _, n := range []int{0, 4, 16, 63, 64, 100, 1000, 4096, len(orig) / 2, len(orig) - 1} {
		if err := try(orig[:n]); err == nil {
			t.Errorf("mkfs.xfs truncated to %d bytes: no error", n)
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 300 {
		b := slices.Clone(orig)
		for range 1 + rng.IntN(8) {
			// Mostly the headers, where the structure is.
			i := rng.IntN(4096)
			if rng.IntN(4) == 0 {
				i = rng.IntN(len(b))
			}
			b[i] = byte(rng.Uint32())
		}
		try(b)
	}
}
