package fat32

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"metropolis.dev/osbase/structfs"
)

// These tests check images with dosfstools (fsck.fat) and mtools, two FAT
// implementations independent of this package and of each other. Linux's
// vfat driver would be a third, but the kernel of the build machines has
// no vfat support and cannot load modules, so no test mounts the images.

func TestTools(t *testing.T) {
	const mib = 1 << 20
	for _, tc := range []struct {
		name string
		opts Options
		// clusterSize is the expected cluster size.
		clusterSize int64
	}{
		{"smallest", Options{Label: "MNGN_BOOT"}, 512},
		{"no label", Options{}, 512},
		{"ESP of 128 MiB", Options{Label: "MNGN_BOOT", BlockCount: 128 * mib / 512}, 512},
		{"ESP of 384 MiB", Options{Label: "MNGN_BOOT", BlockCount: 384 * mib / 512}, 4096},
		{"4 KiB clusters", Options{Label: "NO NAME", SectorsPerCluster: 8}, 4096},
		{"32 KiB clusters", Options{Label: "A", SectorsPerCluster: 64}, 32768},
		{"4096-byte sectors", Options{Label: "METRO_INST", BlockSize: 4096}, 4096},
		{"2048-byte sectors, 8 KiB clusters", Options{BlockSize: 2048, SectorsPerCluster: 4}, 8192},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.opts.VolumeID = 0x1234abcd
			tc.opts.ModTime = modTime
			tree := sampleTree(t, int(tc.clusterSize))
			img := writeImage(t, tree, tc.opts)

			got := fsck(t, img)
			// What the writer thinks it did, to compare with fsck.fat.
			o, p, err := prepare(tree, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			if o.BlockCount == 0 {
				size, _ := minSize(p, o)
				o.BlockCount = size / o.BlockSize
			}
			l, err := chooseLayout(p, o)
			if err != nil {
				t.Fatal(err)
			}
			want := fsckResult{clusterSize: tc.clusterSize, clusters: l.clusters, used: p.clusters(tc.clusterSize)}
			if got != want {
				t.Errorf("fsck.fat reports %+v, want %+v", got, want)
			}

			if err := diffTree(tree, extract(t, img), modTime); err != nil {
				t.Errorf("files extracted by mcopy differ from the tree:\n%v", err)
			}
			label := tc.opts.Label
			if label == "" {
				label = "has no label"
			} else {
				label = "is " + label
			}
			dir := mtools(t, "mdir", img, "::/")
			for _, want := range []string{"Volume in drive : " + label, "Volume Serial Number is 1234-ABCD"} {
				if !strings.Contains(dir, want) {
					t.Errorf("mdir does not show %q:\n%s", want, dir)
				}
			}
		})
	}
}

// mdirLine matches a line of mdir's listing, giving the short name's base
// and extension, in columns of 8 and 3 characters, and the long name.
var mdirLine = regexp.MustCompile(`(?m)^(.{8}) (.{3}) +(?:<DIR>|\d+) +\d{4}-\d\d-\d\d +\d+:\d\d *(.*)$`)

// TestShortNames checks the short names mtools sees, and that it finds the
// long names belonging to them (which needs correct checksums).
func TestShortNames(t *testing.T) {
	img := writeImage(t, sampleTree(t, 512), Options{ModTime: modTime})
	shorts := make(map[string]string) // long name -> short name
	for _, dir := range []string{"::/", "::/tails", "::/lfn", "::/EFI"} {
		for _, m := range mdirLine.FindAllStringSubmatch(mtools(t, "mdir", img, dir), -1) {
			short := strings.TrimSpace(m[1])
			if ext := strings.TrimSpace(m[2]); ext != "" {
				short += "." + ext
			}
			long := m[3]
			if long == "" {
				long = short
			}
			shorts[long] = short
		}
	}
	for long, want := range map[string]string{
		"UPPER.TXT":                     "UPPER.TXT",
		"lower.txt":                     "LOWER.TXT",
		"MiXeD.TxT":                     "MIXED.TXT",
		"Mixed Case Name.txt":           "MIXEDC~1.TXT",
		"name  with   spaces":           "NAMEWI~1",
		".hidden":                       "HIDDEN~1",
		"a.b.c.d":                       "A~1.D",
		"plus+comma,semi;eq=brackets[]": "PLUS_C~1",
		"ünïcödé ☃.txt":                 "_N_C_D~1.TXT",
		"BOOT":                          "BOOT",
		"metropolis":                    "METROP~1",
		"longfilename-00.txt":           "LONGFI~1.TXT",
		"longfilename-08.txt":           "LONGFI~9.TXT",
		"longfilename-09.txt":           "LONGF~10.TXT",
		"longfilename-11.txt":           "LONGF~12.TXT",
		strings.Repeat("b", 13):         "BBBBBB~1",
		"EMPTY2":                        "EMPTY2",
		"empty dir":                     "EMPTYD~1",
	} {
		if got := shorts[long]; got != want {
			t.Errorf("short name of %q is %q, want %q", long, got, want)
		}
	}
	if t.Failed() {
		t.Logf("all short names: %q", shorts)
	}
}

// TestManyFiles fills a directory with entries beyond one cluster and FAT's
// numeric tails beyond ~9 and ~99.
func TestManyFiles(t *testing.T) {
	tree := sampleTree(t, 512)
	for i := range 150 {
		n := structfs.File(0o644, structfs.Bytes([]byte(strconv.Itoa(i))))
		if err := tree.Place(fmt.Sprintf("/tails/longfilename-x%03d.txt", i), n); err != nil {
			t.Fatal(err)
		}
	}
	img := writeImage(t, tree, Options{ModTime: modTime})
	fsck(t, img)
	if err := diffTree(tree, extract(t, img), modTime); err != nil {
		t.Errorf("files extracted by mcopy differ from the tree:\n%v", err)
	}
	if dir := mtools(t, "mdir", img, "::/tails"); !strings.Contains(dir, "LONG~100 TXT") {
		t.Errorf("no tail ~100 in\n%s", dir)
	}
}
