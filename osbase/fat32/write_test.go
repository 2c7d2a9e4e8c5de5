package fat32

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"metropolis.dev/osbase/structfs"
	"metropolis.dev/osbase/structfs/structfstest"
)

// TestDeterministic writes the same tree twice, and once at an offset in
// a larger file, as into a partition, and compares the bytes.
func TestDeterministic(t *testing.T) {
	opts := Options{Label: "MNGN_BOOT", VolumeID: 7, ModTime: modTime}
	a, err := os.ReadFile(writeImage(t, sampleTree(t, 512), opts))
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(writeImage(t, sampleTree(t, 512), opts))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) {
		t.Error("two writes of the same tree differ")
	}

	const offset = 1 << 20
	p := filepath.Join(t.TempDir(), "disk.img")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(offset + int64(len(a)) + offset); err != nil {
		t.Fatal(err)
	}
	opts.BlockCount = int64(len(a)) / 512
	tree := sampleTree(t, 512)
	if err := WriteFS(io.NewOffsetWriter(f, offset), tree, opts); err != nil {
		t.Fatal(err)
	}
	disk, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(disk[offset:offset+len(a)], a) || bytes.Count(disk[:offset], []byte{0}) != offset || bytes.Count(disk[offset+len(a):], []byte{0}) != offset {
		t.Error("writing at an offset gives other bytes, or bytes outside the region")
	}
	if err := diffTree(tree, extract(t, fmt.Sprintf("%s@@%d", p, offset)), modTime); err != nil {
		t.Errorf("files extracted by mcopy at an offset differ from the tree:\n%v", err)
	}
}

// TestHighClusters puts files and directories beyond cluster 65535, where
// the high 16 bits of the cluster number matter.
func TestHighClusters(t *testing.T) {
	var tree structfs.Tree
	for p, content := range map[string][]byte{
		"/a-big":              make([]byte, 40<<20),
		"/b-dir/c-file":       structfstest.Pseudorandom(1, 1000),
		"/b-dir/d-dir/e-file": structfstest.Pseudorandom(2, 1000),
	} {
		if err := tree.Place(p, structfs.File(0o644, structfs.Bytes(content))); err != nil {
			t.Fatal(err)
		}
	}
	img := writeImage(t, &tree, Options{ModTime: modTime, SectorsPerCluster: 1})
	fsck(t, img)
	if err := diffTree(&tree, extract(t, img), modTime); err != nil {
		t.Errorf("files extracted by mcopy differ from the tree:\n%v", err)
	}
}

// TestOverwrite writes over a region full of junk, as a reused partition
// would be, and checks that every byte but those of free clusters is what
// writing into a zeroed region gives.
func TestOverwrite(t *testing.T) {
	tree := sampleTree(t, 512)
	opts := Options{Label: "JUNK", ModTime: modTime}
	size, err := SizeFS(tree, opts)
	if err != nil {
		t.Fatal(err)
	}
	opts.BlockCount = size / 512
	zeroed, junk := make(memRegion, size), make(memRegion, size)
	for i := range junk {
		junk[i] = 0xa5
	}
	for _, r := range []memRegion{zeroed, junk} {
		if err := WriteFS(r, tree, opts); err != nil {
			t.Fatal(err)
		}
	}
	o, p, err := prepare(tree, opts)
	if err != nil {
		t.Fatal(err)
	}
	l, err := chooseLayout(p, o)
	if err != nil {
		t.Fatal(err)
	}
	free := l.clusterOffset(uint32(firstCluster + p.clusters(l.clusterSize())))
	if !bytes.Equal(zeroed[:free], junk[:free]) {
		i := 0
		for zeroed[i] == junk[i] {
			i++
		}
		t.Errorf("writing over junk leaves junk at byte %d (free clusters start at %d)", i, free)
	}
}

// memRegion is a region in memory to write a filesystem to.
type memRegion []byte

func (r memRegion) WriteAt(b []byte, off int64) (int, error) {
	return copy(r[off:], b), nil
}

// TestSizeFS checks that SizeFS gives a size WriteFS accepts, as it does
// larger ones, and that one sector less is too small, for trees that need more than the minimal
// FAT32 filesystem and trees that do not.
func TestSizeFS(t *testing.T) {
	big := func(size int) *structfs.Tree {
		var tree structfs.Tree
		if err := tree.Place("/big", structfs.File(0o644, structfs.Bytes(structfstest.Pseudorandom(1, size)))); err != nil {
			t.Fatal(err)
		}
		return &tree
	}
	for _, tc := range []struct {
		name string
		tree *structfs.Tree
		opts Options
		// want is the expected size, computed by hand, or 0 to not check.
		want int64
	}{
		// 65525 clusters, 2 FATs of 512 sectors, 32 reserved sectors.
		{"empty", &structfs.Tree{}, Options{}, (65525 + 2*512 + 32) * 512},
		{"empty, 4096-byte sectors", &structfs.Tree{}, Options{BlockSize: 4096}, (65525 + 2*64 + 32) * 4096},
		{"empty, 4 KiB clusters", &structfs.Tree{}, Options{SectorsPerCluster: 8}, (65525*8 + 2*512 + 32) * 512},
		// Reserved sectors grow to 64 to align the data to 32 KiB.
		{"empty, 32 KiB clusters", &structfs.Tree{}, Options{SectorsPerCluster: 64}, (65525*64 + 2*512 + 64) * 512},
		{"sample", sampleTree(t, 512), Options{Label: "LABEL"}, (65525 + 2*512 + 32) * 512},
		{"40 MiB file", big(40 << 20), Options{}, 0},
		{"40 MiB file, 2 KiB clusters", big(40 << 20), Options{SectorsPerCluster: 4}, 0},
		{"70 MiB file, 1024-byte sectors", big(70 << 20), Options{BlockSize: 1024}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			size, err := SizeFS(tc.tree, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			if tc.want != 0 && size != tc.want {
				t.Errorf("SizeFS = %d, want %d", size, tc.want)
			}
			bs := tc.opts.BlockSize
			if bs == 0 {
				bs = 512
			}
			tc.opts.BlockCount = size/bs - 1
			err = WriteFS(noWrites{t}, tc.tree, tc.opts)
			if want := fmt.Sprintf("fat32: %d bytes are too small for the tree, which needs at least %d bytes", size-bs, size); err == nil || err.Error() != want {
				t.Errorf("WriteFS one sector smaller = %v, want %q", err, want)
			}
			tc.opts.BlockCount++
			fsck(t, writeImage(t, tc.tree, tc.opts))
			// Every larger size works too.
			o, p, err := prepare(tc.tree, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			for range 1000 {
				o.BlockCount++
				if _, err := chooseLayout(p, o); err != nil {
					t.Fatalf("%d sectors: %v", o.BlockCount, err)
				}
			}
		})
	}
}

// noWrites fails the test on every write.
type noWrites struct{ t *testing.T }

func (w noWrites) WriteAt(b []byte, off int64) (int, error) {
	w.t.Errorf("unexpected write of %d bytes at %d", len(b), off)
	return len(b), nil
}

// fakeBlob is a file of a given size whose content is never read.
type fakeBlob int64

func (b fakeBlob) Size() int64                  { return int64(b) }
func (b fakeBlob) Open() (io.ReadCloser, error) { return nil, errors.New("not readable") }

func TestErrors(t *testing.T) {
	file := structfs.File(0o644, structfs.Bytes([]byte("x")))
	for _, tc := range []struct {
		name  string
		nodes map[string]structfs.Node
		opts  Options
		want  string
	}{
		{"symlink", map[string]structfs.Node{"/etc/link": structfs.Symlink("target")}, Options{},
			"fat32: /etc/link: a symbolic link cannot be stored in FAT, which holds only regular files and directories"},
		{"device", map[string]structfs.Node{"/dev/null": structfs.CharDevice(0o666, 1, 3)}, Options{}, "fat32: /dev/null: a character device cannot be stored"},
		{"block device", map[string]structfs.Node{"/dev/sda": structfs.BlockDevice(0o666, 8, 0)}, Options{}, "fat32: /dev/sda: a block device cannot"},
		{"case", map[string]structfs.Node{"/d/README": file, "/d/readme": file}, Options{},
			`fat32: /d/readme: the name differs from "README" only in case, and FAT ignores case`},
		{"case of directories", map[string]structfs.Node{"/EFI/x": file, "/efi": file}, Options{}, `fat32: /efi: the name differs from "EFI"`},
		{"unicode case", map[string]structfs.Node{"/Ü": file, "/ü": file}, Options{}, `fat32: /ü: the name differs from "Ü"`},
		{"character", map[string]structfs.Node{"/a/b:c": file}, Options{}, `fat32: /a/b:c: FAT does not allow the character ':' in names`},
		{"trailing dot", map[string]structfs.Node{"/a./b": file}, Options{}, "fat32: /a.: the name ends in a dot or space"},
		{"4 GiB", map[string]structfs.Node{"/big": structfs.File(0o644, fakeBlob(1<<32))}, Options{},
			"fat32: /big: 4294967296 bytes, more than FAT's limit of 4 GiB - 1"},
		{"too many entries", manyFiles(maxDirEntries + 1), Options{}, "fat32: /d: the directory has 65537 entries, more than FAT's 65536"},
		// Each file needs a short and a long name entry.
		{"too many long entries", manyFiles(maxDirEntries / 2), Options{}, "fat32: /d: the directory needs 65538 entries, more than FAT's 65536"},
		{"label too long", nil, Options{Label: "ABCDEFGHIJKL"}, `fat32: label "ABCDEFGHIJKL" is longer than 11 characters`},
		{"label lower case", nil, Options{Label: "boot"}, `fat32: label "boot" has the character 'b', but labels hold only upper case letters, digits, spaces and !#$%&'()-@^_` + "`" + `{}~`},
		{"label character", nil, Options{Label: "A.B"}, `has the character '.'`},
		{"label space", nil, Options{Label: " A"}, `fat32: label " A" starts with a space`},
		{"block size", nil, Options{BlockSize: 520}, "fat32: block size 520 is not 512, 1024, 2048 or 4096"},
		{"cluster size", nil, Options{SectorsPerCluster: 3}, "fat32: 3 sectors per cluster is not a power of two giving clusters of at most 32768 bytes"},
		{"cluster too large", nil, Options{SectorsPerCluster: 128}, "fat32: 128 sectors per cluster"},
		{"cluster too large for sectors", nil, Options{BlockSize: 4096, SectorsPerCluster: 16}, "fat32: 16 sectors per cluster"},
		{"negative cluster size", nil, Options{SectorsPerCluster: -1}, "fat32: -1 sectors per cluster"},
		{"time", nil, Options{ModTime: time.Date(1979, 1, 1, 0, 0, 0, 0, time.UTC)}, "fat32: time 1979-01-01 00:00:00 +0000 UTC is outside FAT's years 1980 to 2107"},
		{"no blocks", nil, Options{BlockCount: -1}, "fat32: block count -1 is not between 1 and 4294967295"},
		{"too many blocks", nil, Options{BlockCount: 1 << 32}, "fat32: block count 4294967296 is not between 1"},
		{"too small", nil, Options{BlockCount: 1000}, "fat32: 512000 bytes are too small for the tree, which needs at least 34089472 bytes"},
		// The smallest FATs that describe the rest are 33038210 sectors
		// each, which leave 4294967295 - 32 - 2*33038210 clusters.
		{"too large for the cluster size", nil, Options{BlockCount: 1<<32 - 1, SectorsPerCluster: 1},
			"fat32: no cluster size fits 2199023255040 bytes (4294967295 sectors): with 512-byte clusters: 4228890843 clusters are more than the 268435443 of FAT32"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var tree structfs.Tree
			for p, n := range tc.nodes {
				if err := tree.Place(p, n); err != nil {
					t.Fatal(err)
				}
			}
			if tc.opts.BlockCount == 0 {
				tc.opts.BlockCount = 1 << 20
			}
			if err := WriteFS(noWrites{t}, &tree, tc.opts); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("WriteFS = %v, want error containing %q", err, tc.want)
			}
		})
	}
}

// manyFiles returns n files in the directory /d, with names that need
// one long name entry each.
func manyFiles(n int) map[string]structfs.Node {
	nodes := make(map[string]structfs.Node)
	for i := range n {
		nodes[fmt.Sprintf("/d/f%d", i)] = structfs.File(0o644, structfs.Bytes(nil))
	}
	return nodes
}

// TestSizeFSErrors checks that SizeFS reports trees that fit nowhere.
func TestSizeFSErrors(t *testing.T) {
	var tree structfs.Tree
	for i := range 600 {
		if err := tree.Place(fmt.Sprintf("/f%d", i), structfs.File(0o644, fakeBlob(1<<32-1))); err != nil {
			t.Fatal(err)
		}
	}
	_, err := SizeFS(&tree, Options{SectorsPerCluster: 1})
	// 600 files of 8388608 clusters, a root directory of 1200 entries in 75
	// clusters, 32 reserved sectors and two FATs of 39321601 sectors.
	if want := "fat32: the tree does not fit into any FAT32 filesystem: with 512-byte clusters: 5111808109 sectors are more than FAT32 can count"; err == nil || err.Error() != want {
		t.Errorf("SizeFS = %v, want %q", err, want)
	}
	if _, err := SizeFS(&tree, Options{Label: "x"}); err == nil || !strings.Contains(err.Error(), `fat32: label "x"`) {
		t.Errorf("SizeFS with a bad label = %v", err)
	}
}

// failingDisk fails writes after the first n, never if n is negative.
type failingDisk struct{ n int }

var errDisk = errors.New("I/O error")

func (d *failingDisk) WriteAt(b []byte, _ int64) (int, error) {
	if d.n == 0 {
		return 0, errDisk
	}
	d.n--
	return len(b), nil
}

// lyingBlob claims a size its content does not have.
type lyingBlob struct{ fakeBlob }

func (lyingBlob) Open() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader("short")), nil }

func TestWriteFails(t *testing.T) {
	tree := sampleTree(t, 512)
	opts := Options{BlockCount: 1 << 20}
	for _, tc := range []struct {
		writes int
		want   string
	}{
		{0, "fat32: writing the reserved sectors: I/O error"},
		{1, "fat32: writing the FATs: I/O error"},
		{1 + 2*8, "fat32: writing /: I/O error"},
		{1 + 2*8 + 1, "fat32: writing /.hidden: I/O error"},
	} {
		if err := WriteFS(&failingDisk{tc.writes}, tree, opts); !errors.Is(err, errDisk) || err.Error() != tc.want {
			t.Errorf("failing after %d writes: %v, want %q", tc.writes, err, tc.want)
		}
	}
	if err := tree.Place("/lying", structfs.File(0o644, lyingBlob{10})); err != nil {
		t.Fatal(err)
	}
	err := WriteFS(&failingDisk{-1}, tree, opts)
	if want := "fat32: writing /lying: content ended after 5 of 10 bytes"; err == nil || err.Error() != want {
		t.Errorf("WriteFS with a file shorter than its size = %v, want %q", err, want)
	}
}
