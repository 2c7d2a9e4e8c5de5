package structfstest

import (
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"metropolis.dev/osbase/structfs"
)

// Sample returns a tree holding every node type and the corner cases of
// image writers: setuid/setgid/sticky modes, IDs above 65535, devices with
// minors above 255, empty and block-sized files, files spanning several
// blocks, names of the maximum length, implicit parents, and host files
// read lazily. The same calls give trees with identical contents.
func Sample(tb testing.TB) *structfs.Tree {
	tb.Helper()
	var t structfs.Tree
	owned := func(n structfs.Node, uid, gid uint32) structfs.Node {
		n.UID, n.GID = uid, gid
		return n
	}
	bytes := func(s string) structfs.Blob { return structfs.Bytes([]byte(s)) }
	place := map[string]structfs.Node{
		"/":                    structfs.Dir(0o755),
		"/init":                structfs.File(0o755, structfs.Bytes(Pseudorandom(1, 3*4096+123))),
		"/etc":                 structfs.Dir(0o755),
		"/etc/hosts":           structfs.File(0o644, bytes("127.0.0.1 localhost\n")),
		"/etc/empty":           structfs.File(0o644, bytes("")),
		"/etc/block":           structfs.File(0o644, structfs.Bytes(Pseudorandom(2, 4096))),
		"/etc/shadow":          owned(structfs.File(0o640, bytes("root:*:1::::::\n")), 0, 42),
		"/etc/machine-id":      structfs.Symlink("/ephemeral/machine-id"),
		"/etc/relative":        structfs.Symlink("../init"),
		"/etc/long-target":     structfs.Symlink(strings.Repeat("t", 300)),
		"/dev/console":         structfs.CharDevice(0o600, 5, 1),
		"/dev/null":            structfs.CharDevice(0o666, 1, 3),
		"/dev/loop0":           owned(structfs.BlockDevice(0o660, 7, 0), 0, 6),
		"/dev/highminor":       structfs.CharDevice(0o600, structfs.MaxMajor, structfs.MaxMinor),
		"/tmp":                 structfs.Dir(fs.ModeSticky | 0o777),
		"/usr/bin/su":          structfs.File(fs.ModeSetuid|0o755, bytes("su")),
		"/usr/bin/wall":        owned(structfs.File(fs.ModeSetgid|0o755, bytes("wall")), 0, 5),
		"/home/user":           owned(structfs.Dir(0o700), 1000, 1000),
		"/home/user/big-ids":   owned(structfs.File(0o600, bytes("ids")), 70000, 70001),
		"/a/b/c/d/deep":        structfs.File(0o444, bytes("deep")),
		"/names/with space":    structfs.File(0o644, bytes("space")),
		"/names/ünïcödé":       structfs.File(0o644, bytes("unicode")),
		"/names/" + longName(): structfs.File(0o644, bytes("long")),
	}
	for _, d := range []string{"/proc", "/sys", "/run", "/data", "/esp", "/ephemeral"} {
		place[d] = structfs.Dir(0o555)
	}
	for p, n := range place {
		if err := t.Place(p, n); err != nil {
			tb.Fatal(err)
		}
	}
	if err := t.PlaceHostDir("/lib/modules", hostModules(tb)); err != nil {
		tb.Fatal(err)
	}
	return &t
}

// longName is a file name of the maximum length.
func longName() string {
	return strings.Repeat("n", structfs.MaxNameLen)
}

// hostModules makes a small host directory tree for PlaceHostDir.
func hostModules(tb testing.TB) string {
	tb.Helper()
	dir := tb.TempDir()
	files := map[string][]byte{
		"6.1.0/modules.dep":              []byte("kernel/fs/erofs/erofs.ko:\n"),
		"6.1.0/kernel/fs/erofs/erofs.ko": Pseudorandom(3, 70000),
	}
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			tb.Fatal(err)
		}
		if err := os.WriteFile(p, content, 0o644); err != nil {
			tb.Fatal(err)
		}
	}
	if err := os.Symlink("6.1.0", filepath.Join(dir, "current")); err != nil {
		tb.Fatal(err)
	}
	// The modes must not depend on the umask of whoever runs the test.
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		switch {
		case err != nil:
			return err
		case d.IsDir():
			return os.Chmod(p, 0o755)
		case d.Type().IsRegular():
			return os.Chmod(p, 0o644)
		}
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	return dir
}

// Pseudorandom returns n bytes that depend only on seed, content that does
// not compress, so bugs in block handling cannot hide behind zeros.
func Pseudorandom(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}
