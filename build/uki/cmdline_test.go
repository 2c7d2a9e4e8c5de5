package uki

import (
	"crypto/sha256"
	"reflect"
	"strings"
	"testing"

	"metropolis.dev/osbase/verity"
)

func TestCheckCmdline(t *testing.T) {
	for _, tc := range []struct {
		cmdline string
		max     int
		want    string // error substring; empty for success
	}{
		{"console=ttyS0 quiet", 100, ""},
		{`dm-mod.create="rootfs,,,ro,0 8 verity" root=/dev/dm-0 ~!@#$%^&*()_+{}|:<>?`, 100, ""},
		{strings.Repeat("a", 100), 100, ""},
		{strings.Repeat("a", 101), 100, "101 bytes, more than the kernel's limit of 100"},
		{"", 100, "empty"},
		{"a\x00root=/dev/sda", 100, "byte 0x00 at offset 1"},
		{"a\nb", 100, "byte 0x0a at offset 1"},
		{"a\tb", 100, "byte 0x09"},
		{"a\x7fb", 100, "byte 0x7f"},
		{"caf\u00e9", 100, "byte 0xc3 at offset 3"},
	} {
		err := CheckCmdline(tc.cmdline, tc.max)
		if tc.want == "" && err != nil {
			t.Errorf("CheckCmdline(%q): unexpected error %v", tc.cmdline, err)
		}
		if tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("CheckCmdline(%q): got error %v, want one containing %q", tc.cmdline, err, tc.want)
		}
	}
}

func testTable() *verity.MappingTable {
	return &verity.MappingTable{
		DataDevice:     "PARTLABEL=METROPOLIS-SYSTEM-X",
		HashDevice:     "PARTLABEL=METROPOLIS-SYSTEM-X",
		DataBlocks:     1000,
		HashStartBlock: 1000,
		RootHash:       sha256.Sum256([]byte("root")),
		Salt:           []byte("salt"),
	}
}

func TestAppendVerityRoot(t *testing.T) {
	table := testTable()
	root := `dm-mod.create="rootfs,,,ro,` + table.String() + `" root=/dev/dm-0`
	for _, tc := range []struct {
		cmdline, want, err string
	}{
		{cmdline: "console=ttyS0 quiet", want: "console=ttyS0 quiet " + root},
		{cmdline: "", want: root},
		{cmdline: `rootfstype=erofs foo="root=x" rootwait`, want: `rootfstype=erofs foo="root=x" rootwait ` + root},
		{cmdline: "quiet root=/dev/sda1", err: "sets root already"},
		{cmdline: "quiet\troot=/dev/sda1", err: "sets root already"},
		{cmdline: "root", err: "sets root already"},
		{cmdline: `dm-mod.create="x,,,ro,0 1 zero"`, err: "sets dm-mod.create already"},
	} {
		got, err := AppendVerityRoot(tc.cmdline, table)
		switch {
		case tc.err == "" && err != nil:
			t.Errorf("AppendVerityRoot(%q): unexpected error %v", tc.cmdline, err)
		case tc.err == "" && got != tc.want:
			t.Errorf("AppendVerityRoot(%q) = %q, want %q", tc.cmdline, got, tc.want)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("AppendVerityRoot(%q): got error %v, want one containing %q", tc.cmdline, err, tc.err)
		}
	}
}

// TestAppendVerityRootParses reads the table back from the command line as
// the node's initramfs would.
func TestAppendVerityRootParses(t *testing.T) {
	cmdline, err := AppendVerityRoot("quiet", testTable())
	if err != nil {
		t.Fatal(err)
	}
	var value string
	for _, p := range parameters(cmdline) {
		if v, ok := strings.CutPrefix(p, "dm-mod.create="); ok {
			value = strings.Trim(v, `"`)
		}
	}
	fields := strings.SplitN(value, ",", 5)
	if len(fields) != 5 || fields[0] != VerityRootName || fields[3] != "ro" {
		t.Fatalf("dm-mod.create=%q: want name %s, read-only, and a table", value, VerityRootName)
	}
	got, err := verity.ParseMappingTable(fields[4])
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, testTable()) {
		t.Errorf("table read back as %+v, want %+v", got, testTable())
	}
}

func TestAppendVerityRootInvalidTable(t *testing.T) {
	table := testTable()
	table.DataBlocks = 0
	if _, err := AppendVerityRoot("quiet", table); err == nil {
		t.Error("AppendVerityRoot accepted an invalid table")
	}
}

func TestParameters(t *testing.T) {
	for _, tc := range []struct {
		cmdline string
		want    []string
	}{
		{"", nil},
		{"  a  b=c\t d ", []string{"a", "b=c", "d"}},
		{`a="x y" b`, []string{`a="x y"`, "b"}},
		{`"a b"=c d`, []string{`"a b"=c`, "d"}},
	} {
		if got := parameters(tc.cmdline); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("parameters(%q) = %q, want %q", tc.cmdline, got, tc.want)
		}
	}
}
