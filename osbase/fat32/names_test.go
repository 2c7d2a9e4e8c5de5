package fat32

import (
	"strings"
	"testing"
)

func TestChecksum(t *testing.T) {
	// Computed independently from the formula of the specification.
	for name, want := range map[string]byte{
		"MIXEDC~1TXT": 0xa8,
		"FOO     BAR": 0x53,
		"LONGF~10TXT": 0x09,
		".          ": 0x77,
	} {
		var s shortName
		copy(s[:], name)
		if got := s.checksum(); got != want {
			t.Errorf("checksum of %q = %#02x, want %#02x", name, got, want)
		}
	}
}

func TestCheckLongName(t *testing.T) {
	for name, want := range map[string]string{
		"plain.txt":    "",
		"with space":   "",
		".leading dot": "",
		"ünïcödé ☃ 😀":  "",
		"+,;=[]":       "",
		"trailing.":    "ends in a dot or space",
		"trailing ":    "ends in a dot or space",
		"a:b":          `character ':'`,
		"a*b":          `character '*'`,
		`a"b`:          `character '"'`,
		"a<b":          `character '<'`,
		"a>b":          `character '>'`,
		"a?b":          `character '?'`,
		`a\b`:          `character '\\'`,
		"a|b":          `character '|'`,
		"a\tb":         `character '\t'`,
		"a\x7fb":       "",
		"invalid\xff":  "not valid UTF-8",
	} {
		err := checkLongName(name)
		if want == "" && err != nil || want != "" && (err == nil || !strings.Contains(err.Error(), want)) {
			t.Errorf("checkLongName(%q) = %v, want %q", name, err, want)
		}
	}
}

func TestExactShortName(t *testing.T) {
	for name, want := range map[string]string{
		"BOOTX64.EFI":  "BOOTX64 EFI",
		"EFI":          "EFI        ",
		"A":            "A          ",
		"12345678.123": "12345678123",
		"!#$%&'().-@^": "!#$%&'()-@^",
		"_`{}~":        "_`{}~      ",
		"efi":          "",
		"123456789":    "",
		"A.1234":       "",
		"A.B.C":        "",
		".A":           "",
		"A.":           "",
		"A B":          "",
		"A+B":          "",
		"Ü":            "",
	} {
		s, ok := exactShortName(name)
		if want == "" && ok || want != "" && string(s[:]) != want {
			t.Errorf("exactShortName(%q) = %q, %v; want %q", name, s, ok, want)
		}
	}
}

func TestBasisName(t *testing.T) {
	for name, want := range map[string][2]string{
		"longfilename.txt":    {"LONGFILE", "TXT"},
		"a.b.c.d":             {"A", "D"},
		"...lead":             {"LEAD", ""},
		".bashrc":             {"BASHRC", ""},
		"x.tar.gz":            {"X", "GZ"},
		"name  with   spaces": {"NAMEWITH", ""},
		"ext.toolong":         {"EXT", "TOO"},
		"plus+comma,;=[].txt": {"PLUS_COM", "TXT"},
		"ünï.çé":              {"_N_", "__"},
		"😀":                   {"_", ""},
		" .x":                 {"X", ""},
		"._":                  {"_", ""},
		". .txt":              {"TXT", ""},
	} {
		base, ext := basisName(name)
		if base != want[0] || ext != want[1] {
			t.Errorf("basisName(%q) = %q, %q; want %q, %q", name, base, ext, want[0], want[1])
		}
	}
}

func TestAssignShortNames(t *testing.T) {
	for _, tc := range []struct {
		names []string // sorted, as Walk gives them
		want  []string
	}{
		// A name that is already a short name keeps it, even if another
		// name sorted before it would have taken it.
		{[]string{"LONGFI~1.TXT", "longfilename.txt"}, []string{"LONGFI~1TXT", "LONGFI~2TXT"}},
		{[]string{"LONGFI~2.TXT", "longfilename-a.txt", "longfilename-b.txt"}, []string{"LONGFI~2TXT", "LONGFI~1TXT", "LONGFI~3TXT"}},
		// Upper case forms are used if free, and a tail given before may
		// have taken one.
		{[]string{"longfilename.txt", "longfi~1.txt"}, []string{"LONGFI~1TXT", "LONGFI~2TXT"}},
		{[]string{"README", "readme.txt"}, []string{"README     ", "README  TXT"}},
		{[]string{"Readme.txt", "readme-long.txt"}, []string{"README  TXT", "README~1TXT"}},
		// Tails grow into the base.
		{[]string{"abcdefghij1", "abcdefghij2"}, []string{"ABCDEF~1   ", "ABCDEF~2   "}},
		{[]string{"ab.c", "ab.c.d"}, []string{"AB      C  ", "AB~1    D  "}},
	} {
		var nodes []*node
		for _, n := range tc.names {
			nodes = append(nodes, &node{name: n})
		}
		assignShortNames(nodes)
		for i, n := range nodes {
			wantLong := tc.names[i] != strings.TrimSpace(tc.want[i][:8])+"."+strings.TrimSpace(tc.want[i][8:]) && tc.names[i] != strings.TrimSpace(tc.want[i])
			if string(n.short[:]) != tc.want[i] || n.long != wantLong {
				t.Errorf("%q: %q gets %q (long name %v), want %q (long name %v)", tc.names, n.name, n.short, n.long, tc.want[i], wantLong)
			}
		}
	}
}

// TestTailsFor65536 checks that a directory of the most names FAT allows,
// all with the same basis name, still gets unique short names.
func TestTailsFor65536(t *testing.T) {
	var nodes []*node
	for range maxDirEntries - 2 {
		nodes = append(nodes, &node{name: "same basis name"})
	}
	assignShortNames(nodes)
	seen := make(map[shortName]bool)
	for _, n := range nodes {
		if seen[n.short] {
			t.Fatalf("short name %q given twice", n.short)
		}
		seen[n.short] = true
	}
	if last := string(nodes[len(nodes)-1].short[:]); last != "SA~65534   " {
		t.Errorf("last short name is %q", last)
	}
}
