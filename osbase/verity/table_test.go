package verity

import (
	"bytes"
	"encoding/hex"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
)

const (
	testRoot = "3d2e3bd1f94e7c2a6c1e0c4b2b1c6e0a8f7d9c0b1a2e3f405162738495a6b7c8"
	testSalt = "00112233445566778899aabbccddeeff"
)

func testTable() *MappingTable {
	t := &MappingTable{
		DataDevice:     "PARTLABEL=METROPOLIS-SYSTEM-X",
		HashDevice:     "PARTLABEL=METROPOLIS-SYSTEM-X",
		DataBlocks:     262144,
		HashStartBlock: 262144,
		Salt:           mustHex(testSalt),
	}
	copy(t.RootHash[:], mustHex(testRoot))
	return t
}

func mustHex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

func TestMappingTableString(t *testing.T) {
	for _, tc := range []struct {
		name   string
		modify func(*MappingTable)
		want   string
	}{
		{
			name: "node layout",
			want: "0 2097152 verity 1 PARTLABEL=METROPOLIS-SYSTEM-X PARTLABEL=METROPOLIS-SYSTEM-X 4096 4096 262144 262144 sha256 " + testRoot + " " + testSalt,
		},
		{
			name: "optional parameters",
			modify: func(m *MappingTable) {
				m.OptionalParameters = []string{PanicOnCorruption, IgnoreZeroBlocks}
			},
			want: "0 2097152 verity 1 PARTLABEL=METROPOLIS-SYSTEM-X PARTLABEL=METROPOLIS-SYSTEM-X 4096 4096 262144 262144 sha256 " + testRoot + " " + testSalt + " 2 panic_on_corruption ignore_zero_blocks",
		},
		{
			name: "separate devices, no salt",
			modify: func(m *MappingTable) {
				m.DataDevice, m.HashDevice = "/dev/vda2", "8:3"
				m.DataBlocks, m.HashStartBlock = 1, 0
				m.Salt = nil
			},
			want: "0 8 verity 1 /dev/vda2 8:3 4096 4096 1 0 sha256 " + testRoot + " -",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			table := testTable()
			if tc.modify != nil {
				tc.modify(table)
			}
			if got := table.String(); got != tc.want {
				t.Errorf("String =\n%s\nwant\n%s", got, tc.want)
			}
			parsed, err := ParseMappingTable(tc.want)
			if err != nil {
				t.Fatalf("ParseMappingTable: %v", err)
			}
			if !tablesEqual(parsed, table) {
				t.Errorf("ParseMappingTable = %+v, want %+v", parsed, table)
			}
		})
	}
}

// tablesEqual compares tables, taking nil and empty slices as equal.
func tablesEqual(a, b *MappingTable) bool {
	return a.DataDevice == b.DataDevice && a.HashDevice == b.HashDevice &&
		a.DataBlocks == b.DataBlocks && a.HashStartBlock == b.HashStartBlock &&
		a.RootHash == b.RootHash && bytes.Equal(a.Salt, b.Salt) &&
		slices.Equal(a.OptionalParameters, b.OptionalParameters)
}

func TestParseMappingTableAccepts(t *testing.T) {
	for _, tc := range []struct {
		name, line string
		want       func(*MappingTable)
	}{
		{
			name: "tabs, newline and runs of spaces",
			line: "0\t2097152  verity 1 PARTLABEL=METROPOLIS-SYSTEM-X PARTLABEL=METROPOLIS-SYSTEM-X 4096 4096 262144 262144 sha256 " + testRoot + " " + testSalt + "\n",
		},
		{
			name: "upper-case hex",
			line: "0 2097152 verity 1 PARTLABEL=METROPOLIS-SYSTEM-X PARTLABEL=METROPOLIS-SYSTEM-X 4096 4096 262144 262144 sha256 " + strings.ToUpper(testRoot) + " " + strings.ToUpper(testSalt),
		},
		{
			name: "zero optional parameters",
			line: "0 2097152 verity 1 PARTLABEL=METROPOLIS-SYSTEM-X PARTLABEL=METROPOLIS-SYSTEM-X 4096 4096 262144 262144 sha256 " + testRoot + " " + testSalt + " 0",
		},
		{
			name: "every parameter but conflicting modes",
			line: "0 2097152 verity 1 PARTLABEL=METROPOLIS-SYSTEM-X PARTLABEL=METROPOLIS-SYSTEM-X 4096 4096 262144 262144 sha256 " + testRoot + " " + testSalt +
				" 4 restart_on_corruption ignore_zero_blocks check_at_most_once try_verify_in_tasklet",
			want: func(m *MappingTable) {
				m.OptionalParameters = []string{RestartOnCorruption, IgnoreZeroBlocks, CheckAtMostOnce, TryVerifyInTasklet}
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want := testTable()
			if tc.want != nil {
				tc.want(want)
			}
			got, err := ParseMappingTable(tc.line)
			if err != nil {
				t.Fatalf("ParseMappingTable: %v", err)
			}
			if !tablesEqual(got, want) {
				t.Errorf("ParseMappingTable = %+v, want %+v", got, want)
			}
		})
	}
}

func TestParseMappingTableRejects(t *testing.T) {
	const (
		devs = "PARTLABEL=A PARTLABEL=A"
		tail = " sha256 " + testRoot + " " + testSalt
	)
	for _, tc := range []struct {
		name, line, wantErr string
	}{
		{"empty", "", "0 fields, want at least 13"},
		{"truncated", "0 8 verity 1 /dev/a /dev/b 4096 4096 1 0 sha256 " + testRoot, "12 fields"},
		{"start sector", "8 8 verity 1 /dev/a /dev/b 4096 4096 1 0" + tail, `start sector is "8", only "0"`},
		{"target type", "0 8 linear 1 /dev/a /dev/b 4096 4096 1 0" + tail, `target type is "linear"`},
		{"format version 0", "0 8 verity 0 /dev/a /dev/b 4096 4096 1 0" + tail, `format version is "0"`},
		{"data block size", "0 8 verity 1 /dev/a /dev/b 512 4096 1 0" + tail, `data block size is "512"`},
		{"hash block size", "0 8 verity 1 /dev/a /dev/b 4096 1024 1 0" + tail, `hash block size is "1024"`},
		{"algorithm", "0 8 verity 1 /dev/a /dev/b 4096 4096 1 0 sha1 " + testRoot + " " + testSalt, `hash algorithm is "sha1"`},
		{"length mismatch", "0 16 verity 1 /dev/a /dev/b 4096 4096 1 0" + tail, "length of 16 sectors does not cover exactly the 1 data blocks (8 sectors)"},
		{"negative data blocks", "0 8 verity 1 /dev/a /dev/b 4096 4096 -1 0" + tail, `data blocks "-1" is not a decimal number`},
		{"plus sign", "0 8 verity 1 /dev/a /dev/b 4096 4096 +1 0" + tail, `data blocks "+1" is not a decimal number`},
		{"leading zero", "0 8 verity 1 /dev/a /dev/b 4096 4096 01 0" + tail, `data blocks "01" is not a decimal number`},
		{"hex number", "0 8 verity 1 /dev/a /dev/b 4096 4096 0x1 0" + tail, `data blocks "0x1"`},
		{"number overflow", "0 8 verity 1 /dev/a /dev/b 4096 4096 1 99999999999999999999" + tail, "hash start block: strconv.ParseInt"},
		{"zero data blocks", "0 0 verity 1 /dev/a /dev/b 4096 4096 0 0" + tail, "0 data blocks, want 1 to"},
		{"too many data blocks", "0 0 verity 1 /dev/a /dev/b 4096 4096 1152921504606846976 0" + tail, "1152921504606846976 data blocks, want 1 to 1152921504606846975"},
		{"hash start too large", "0 8 verity 1 /dev/a /dev/b 4096 4096 1 1152921504606846976" + tail, "hash start block 1152921504606846976"},
		{"tree overlaps data", "0 8 verity 1 " + devs + " 4096 4096 1 0" + tail, "hash tree at block 0 overlaps the 1 data blocks"},
		{"short root hash", "0 8 verity 1 /dev/a /dev/b 4096 4096 1 0 sha256 " + testRoot[2:] + " -", "is not 64 hex digits"},
		{"root hash not hex", "0 8 verity 1 /dev/a /dev/b 4096 4096 1 0 sha256 " + strings.Repeat("g", 64) + " -", "root hash: encoding/hex"},
		{"odd salt", "0 8 verity 1 /dev/a /dev/b 4096 4096 1 0 sha256 " + testRoot + " abc", "salt: encoding/hex"},
		{"empty salt as hex", "0 8 verity 1 /dev/a /dev/b 4096 4096 1 0 sha256 " + testRoot + " --", "salt: encoding/hex"},
		{"long salt", "0 8 verity 1 /dev/a /dev/b 4096 4096 1 0 sha256 " + testRoot + " " + strings.Repeat("00", MaxSaltSize+1), "salt of 514 hex digits"},
		{"device with comma", "0 8 verity 1 /dev/a,b /dev/b 4096 4096 1 0" + tail, `data device: name "/dev/a,b" contains ','`},
		{"device with quote", "0 8 verity 1 /dev/a \"/dev/b\" 4096 4096 1 0" + tail, "hash device: name"},
		{"device with backslash", "0 8 verity 1 /dev/a\\040b /dev/b 4096 4096 1 0" + tail, "data device"},
		{"device with non-ASCII", "0 8 verity 1 /dev/ä /dev/b 4096 4096 1 0" + tail, "data device"},
		{"non-ASCII space", "0 8 verity 1 /dev/a\u00a0/dev/b /dev/c 4096 4096 1 0" + tail, "data device"},
		{"count without parameters", "0 8 verity 1 /dev/a /dev/b 4096 4096 1 0" + tail + " 1", "1 optional parameters announced, 0 given"},
		{"parameters without count", "0 8 verity 1 /dev/a /dev/b 4096 4096 1 0" + tail + " panic_on_corruption", `optional parameter count "panic_on_corruption"`},
		{"count too small", "0 8 verity 1 /dev/a /dev/b 4096 4096 1 0" + tail + " 1 panic_on_corruption ignore_zero_blocks", "1 optional parameters announced, 2 given"},
		{"unknown parameter", "0 8 verity 1 /dev/a /dev/b 4096 4096 1 0" + tail + " 1 panic_on_everything", `unsupported optional parameter "panic_on_everything"`},
		{"parameter with arguments", "0 8 verity 1 /dev/a /dev/b 4096 4096 1 0" + tail + " 2 use_fec_from_device /dev/c", `unsupported optional parameter "use_fec_from_device"`},
		{"duplicate parameter", "0 8 verity 1 /dev/a /dev/b 4096 4096 1 0" + tail + " 2 ignore_zero_blocks ignore_zero_blocks", "ignore_zero_blocks given twice"},
		{"conflicting modes", "0 8 verity 1 /dev/a /dev/b 4096 4096 1 0" + tail + " 2 panic_on_corruption restart_on_corruption", "conflicting corruption modes panic_on_corruption and restart_on_corruption"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			table, err := ParseMappingTable(tc.line)
			if err == nil {
				t.Fatalf("ParseMappingTable accepts %q as %+v", tc.line, table)
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("ParseMappingTable error = %q, want it to contain %q", err, tc.wantErr)
			}
		})
	}
}

// TestMappingTableRoundTrip renders random valid tables and parses them
// back.
func TestMappingTableRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	devices := []string{"/dev/vda", "/dev/mapper/x", "PARTLABEL=METROPOLIS-SYSTEM-A", "PARTUUID=0f2a3b4c-01", "8:16"}
	params := []string{IgnoreZeroBlocks, CheckAtMostOnce, TryVerifyInTasklet}
	for range 1000 {
		table := &MappingTable{
			DataDevice:     devices[r.IntN(len(devices))],
			HashDevice:     devices[r.IntN(len(devices))],
			DataBlocks:     1 + r.Int64N(maxBlocks),
			HashStartBlock: r.Int64N(maxBlocks + 1),
			Salt:           randomData(r.Uint64(), r.IntN(MaxSaltSize+1)),
		}
		if table.DataDevice == table.HashDevice {
			table.HashStartBlock = table.DataBlocks + r.Int64N(maxBlocks-table.DataBlocks+1)
		}
		copy(table.RootHash[:], randomData(r.Uint64(), len(table.RootHash)))
		for _, p := range params {
			if r.IntN(2) == 0 {
				table.OptionalParameters = append(table.OptionalParameters, p)
			}
		}
		if mode := r.IntN(len(corruptionModes) + 1); mode < len(corruptionModes) {
			table.OptionalParameters = append(table.OptionalParameters, corruptionModes[mode])
		}
		r.Shuffle(len(table.OptionalParameters), func(i, j int) {
			table.OptionalParameters[i], table.OptionalParameters[j] = table.OptionalParameters[j], table.OptionalParameters[i]
		})

		line := table.String()
		parsed, err := ParseMappingTable(line)
		if err != nil {
			t.Fatalf("ParseMappingTable(%q): %v", line, err)
		}
		if !tablesEqual(parsed, table) {
			t.Fatalf("%q parses as %+v, want %+v", line, parsed, table)
		}
	}
}

func FuzzParseMappingTable(f *testing.F) {
	table := testTable()
	f.Add(table.String())
	table.OptionalParameters = []string{RestartOnCorruption, IgnoreZeroBlocks}
	f.Add(table.String())
	f.Add("0 8 verity 1 /dev/a 8:1 4096 4096 1 0 sha256 " + testRoot + " - 0")
	f.Add("0 8 verity 1 /dev/a /dev/a 4096 4096 1 0 sha256 " + testRoot + " -")
	f.Add("0 16 verity 1 /dev/a /dev/b 4096 4096 1 0 sha256 " + testRoot + " 00 2 a b")
	f.Fuzz(func(t *testing.T, line string) {
		table, err := ParseMappingTable(line)
		if err != nil {
			return
		}
		if err := table.Validate(); err != nil {
			t.Fatalf("ParseMappingTable(%q) returns an invalid table: %v", line, err)
		}
		// Rendering is canonical: parsing a rendered table gives back
		// the same table and renders the same.
		rendered := table.String()
		again, err := ParseMappingTable(rendered)
		if err != nil {
			t.Fatalf("%q parses, but its rendering %q does not: %v", line, rendered, err)
		}
		if !reflect.DeepEqual(again, table) {
			t.Fatalf("%q parses as %+v, its rendering %q as %+v", line, table, rendered, again)
		}
		if again.String() != rendered {
			t.Fatalf("rendering is not stable: %q, then %q", rendered, again.String())
		}
		if strings.ContainsAny(rendered, "\",;\\\t\n") {
			t.Fatalf("rendering %q contains a character unsafe on the kernel command line", rendered)
		}
	})
}
