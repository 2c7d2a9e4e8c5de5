package fat32

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"metropolis.dev/osbase/structfs"
	"metropolis.dev/osbase/structfs/structfstest"
)

// modTime is the time of every file in the test images, with an odd second
// that FAT rounds down to 2 seconds.
var modTime = time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)

// sampleTree returns a tree with the cases a FAT writer must get right for
// clusters of clusterSize bytes: names that are valid short names, that
// differ from one only in case, or that need long names of various
// lengths, characters replaced in short names, numeric tails beyond ~9,
// file sizes around the cluster size, nested and empty directories, and a
// directory spanning many clusters. Names are in the Basic Multilingual
// Plane: mtools 4.0.32 reads each half of a UTF-16 surrogate pair as a
// character of its own, so TestLongEntries checks those instead.
func sampleTree(t testing.TB, clusterSize int) *structfs.Tree {
	t.Helper()
	files := map[string][]byte{
		"/EFI/BOOT/BOOTX64.EFI":           structfstest.Pseudorandom(1, 100_000),
		"/EFI/metropolis/boot-a.efi":      structfstest.Pseudorandom(2, 300_000),
		"/metropolis/parameters.pb":       []byte("parameters"),
		"/UPPER.TXT":                      []byte("exact short name"),
		"/lower.txt":                      []byte("lower case"),
		"/MiXeD.TxT":                      []byte("mixed case"),
		"/Mixed Case Name.txt":            []byte("spaces"),
		"/name  with   spaces":            []byte("more spaces"),
		"/.hidden":                        []byte("leading dot"),
		"/a.b.c.d":                        []byte("several dots"),
		"/plus+comma,semi;eq=brackets[]":  []byte("replaced in short names"),
		"/ünïcödé ☃.txt":                  []byte("outside ASCII"),
		"/" + strings.Repeat("n", 255):    []byte("longest name"),
		"/lfn/" + strings.Repeat("a", 12): []byte("12"),
		"/lfn/" + strings.Repeat("b", 13): []byte("13, one entry without NUL"),
		"/lfn/" + strings.Repeat("c", 14): []byte("14"),
		"/lfn/" + strings.Repeat("d", 26): []byte("26"),
		"/lfn/" + strings.Repeat("e", 27): []byte("27"),
		"/deep/a/b/c/d/e/f/g/h/file":      []byte("deep"),
		"/sizes/empty":                    nil,
		"/sizes/one":                      []byte("1"),
		"/sizes/cluster-1":                structfstest.Pseudorandom(3, clusterSize-1),
		"/sizes/cluster":                  structfstest.Pseudorandom(4, clusterSize),
		"/sizes/cluster+1":                structfstest.Pseudorandom(5, clusterSize+1),
		"/sizes/3 clusters":               structfstest.Pseudorandom(6, 3*clusterSize),
	}
	for i := range 12 {
		files[fmt.Sprintf("/tails/longfilename-%02d.txt", i)] = []byte(strconv.Itoa(i))
	}
	// Enough long names for the directory to span many clusters.
	for i := range 700 {
		files[fmt.Sprintf("/many/file with a long name %03d", i)] = []byte(strconv.Itoa(i))
	}
	var tree structfs.Tree
	for p, content := range files {
		if err := tree.Place(p, structfs.File(0o644, structfs.Bytes(content))); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range []string{"/empty dir", "/EMPTY2"} {
		if err := tree.Place(p, structfs.Dir(0o755)); err != nil {
			t.Fatal(err)
		}
	}
	return &tree
}

// writeImage writes tree with opts to a new sparse file and returns its
// path. A zero BlockCount is replaced by the smallest one.
func writeImage(t testing.TB, tree *structfs.Tree, opts Options) string {
	t.Helper()
	if opts.BlockSize == 0 {
		opts.BlockSize = 512
	}
	if opts.BlockCount == 0 {
		size, err := SizeFS(tree, opts)
		if err != nil {
			t.Fatal(err)
		}
		opts.BlockCount = size / opts.BlockSize
	}
	p := filepath.Join(t.TempDir(), "fat.img")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(opts.BlockCount * opts.BlockSize); err != nil {
		t.Fatal(err)
	}
	if err := WriteFS(f, tree, opts); err != nil {
		t.Fatal(err)
	}
	return p
}

// fsckResult is what fsck.fat reports about a filesystem.
type fsckResult struct {
	clusterSize, clusters, used int64
}

// fsckInfo are the lines fsck.fat -v prints about a filesystem without
// problems. Any other line reports one: fsck.fat exits with 0 for some,
// such as differing boot sector copies or wrong long name checksums.
var fsckInfo = regexp.MustCompile(`^(fsck\.fat \d|Checking (we can access the last sector|for unused clusters|free cluster summary)|` +
	`Boot sector contents:$|System ID "MSWIN4\.1"$|Media byte 0xf8 \(hard disk\)$|` +
	` *\d+ (bytes per logical sector|bytes per cluster|reserved sectors|FATs, 32 bit entries|bytes per FAT \(= \d+ sectors\)|` +
	`data clusters \(\d+ bytes\)|hidden sectors|sectors total)$|First FAT starts at|Root directory start at cluster 2 |` +
	`Data area starts at|63 sectors/track, 255 heads$|Starting (check/repair|verification) pass\.$|.*: \d+ files, \d+/\d+ clusters$)`)

var (
	fsckClusterSize = regexp.MustCompile(`(?m)^ *(\d+) bytes per cluster$`)
	fsckUsed        = regexp.MustCompile(`(?m): \d+ files, (\d+)/(\d+) clusters$`)
)

// fsck checks the image at p with fsck.fat, failing the test on any
// problem it reports.
func fsck(t *testing.T, p string) fsckResult {
	t.Helper()
	fsckFat := structfstest.RequireTool(t, "fsck.fat", "dosfstools")
	out, err := exec.Command(fsckFat, "-n", "-v", "-V", p).CombinedOutput()
	if err != nil {
		t.Fatalf("fsck.fat: %v\n%s", err, out)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if !fsckInfo.MatchString(line) {
			t.Fatalf("fsck.fat reports %q:\n%s", line, out)
		}
	}
	var r fsckResult
	if m := fsckClusterSize.FindSubmatch(out); m != nil {
		r.clusterSize, _ = strconv.ParseInt(string(m[1]), 10, 64)
	}
	if m := fsckUsed.FindSubmatch(out); m != nil {
		r.used, _ = strconv.ParseInt(string(m[1]), 10, 64)
		r.clusters, _ = strconv.ParseInt(string(m[2]), 10, 64)
	}
	return r
}

// mtools runs an mtools command on the image img (which may end in
// "@@offset"), failing the test if it fails.
func mtools(t *testing.T, tool, img string, args ...string) string {
	t.Helper()
	path := structfstest.RequireTool(t, tool, "mtools")
	cmd := exec.Command(path, append([]string{"-i", img}, args...)...)
	// Skip mtools' checks of the disk geometry in the boot sector, read
	// long names as UTF-8, and times as UTC.
	cmd.Env = append(os.Environ(), "MTOOLS_SKIP_CHECK=1", "LC_ALL=C.UTF-8", "TZ=UTC")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", tool, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// extract copies the files of img to a new directory with mcopy.
func extract(t *testing.T, img string) string {
	t.Helper()
	dir := t.TempDir()
	if out := mtools(t, "mcopy", img, "-s", "-m", "-n", "::/*", dir); out != "" {
		t.Errorf("mcopy printed:\n%s", out)
	}
	return dir
}

// diffTree compares tree with the directory dir: the same files and
// directories with the same names, contents and modification times.
func diffTree(tree *structfs.Tree, dir string, mtime time.Time) error {
	return structfstest.DiffFunc(tree, dir, func(p string, e structfs.Entry) error {
		if e.Path == "/" {
			return nil
		}
		fi, err := os.Lstat(p)
		switch {
		case err != nil:
			return err
		case fi.IsDir() != (e.Type == structfs.TypeDir):
			return fmt.Errorf("is a %v, want a %v", fi.Mode().Type(), e.Type)
		case !fi.ModTime().Equal(mtime.Truncate(2 * time.Second)):
			return fmt.Errorf("modified at %v, want %v", fi.ModTime().UTC(), mtime)
		}
		if e.Type != structfs.TypeFile {
			return nil
		}
		got, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		var want bytes.Buffer
		if err := structfs.CopyBlob(&want, e.Blob); err != nil {
			return err
		}
		if !bytes.Equal(got, want.Bytes()) {
			return fmt.Errorf("content differs: %d bytes, want %d", len(got), want.Len())
		}
		return nil
	})
}
