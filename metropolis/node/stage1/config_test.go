package main

import (
	"strings"
	"testing"

	"metropolis.dev/osbase/verity"
)

// testTable returns a verity table whose devices are dev.
func testTable(t *testing.T, dev string) *verity.MappingTable {
	t.Helper()
	table := &verity.MappingTable{
		DataDevice:         dev,
		HashDevice:         dev,
		DataBlocks:         100,
		HashStartBlock:     100,
		Salt:               []byte{1, 2, 3, 4},
		OptionalParameters: []string{verity.PanicOnCorruption},
	}
	table.RootHash[0] = 0xab
	if err := table.Validate(); err != nil {
		t.Fatal(err)
	}
	return table
}

func TestParseBootConfig(t *testing.T) {
	table := testTable(t, "PARTLABEL=METROPOLIS-SYSTEM-B")
	cmdline := `console=ttyS0,115200 metropolis.slot=B dm-mod.create="rootfs,,,ro,` + table.String() + `" root=/dev/dm-0` + "\n"
	cfg, err := parseBootConfig(cmdline)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Slot != "B" || cfg.PartitionName != "METROPOLIS-SYSTEM-B" {
		t.Errorf("got slot %q partition %q, want B and METROPOLIS-SYSTEM-B", cfg.Slot, cfg.PartitionName)
	}
	if cfg.Table.String() != table.String() {
		t.Errorf("got table %q, want %q", cfg.Table, table)
	}
}

func TestParseBootConfigErrors(t *testing.T) {
	tableA := testTable(t, "PARTLABEL=METROPOLIS-SYSTEM-A").String()
	for _, tc := range []struct {
		name, cmdline, want string
	}{
		{"no slot", `dm-mod.create="rootfs,,,ro,` + tableA + `"`, "no metropolis.slot"},
		{"bad slot", `metropolis.slot=C dm-mod.create="rootfs,,,ro,` + tableA + `"`, "want A or B"},
		{"two slots", `metropolis.slot=A metropolis.slot=B dm-mod.create="rootfs,,,ro,` + tableA + `"`, "more than once"},
		{"no table", `metropolis.slot=A`, "no dm-mod.create"},
		{"wrong slot", `metropolis.slot=B dm-mod.create="rootfs,,,ro,` + tableA + `"`, "for slot B"},
		{"other device", `metropolis.slot=A dm-mod.create="rootfs,,,ro,` + strings.ReplaceAll(tableA, "PARTLABEL=METROPOLIS-SYSTEM-A", "/dev/vda2") + `"`, "want both on"},
		{"read-write", `metropolis.slot=A dm-mod.create="rootfs,,,rw,` + tableA + `"`, "want \"rootfs\",,,ro"},
		{"other name", `metropolis.slot=A dm-mod.create="data,,,ro,` + tableA + `"`, "want \"rootfs\",,,ro"},
		{"two devices", `metropolis.slot=A dm-mod.create="rootfs,,,ro,` + tableA + `;x,,,ro,` + tableA + `"`, "more than one device"},
		{"two tables", `metropolis.slot=A dm-mod.create="rootfs,,,ro,` + tableA + `,` + tableA + `"`, "more than one table"},
		{"bad hash", `metropolis.slot=A dm-mod.create="rootfs,,,ro,` + strings.Replace(tableA, "ab00", "zz00", 1) + `"`, "verity table"},
		{"unbalanced quote", `metropolis.slot=A dm-mod.create="rootfs,,,ro,` + tableA, "quote"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := parseBootConfig(tc.cmdline)
			if err == nil {
				t.Fatalf("got %+v, want error containing %q", cfg, tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got error %q, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestVerityTarget(t *testing.T) {
	table := testTable(t, "PARTLABEL=METROPOLIS-SYSTEM-A")
	got, err := verityTarget(table, "254:2")
	if err != nil {
		t.Fatal(err)
	}
	if got.StartSector != 0 || got.Length != 800 || got.Type != "verity" {
		t.Errorf("got target %+v, want 800 sectors of verity from 0", got)
	}
	want := "1 254:2 254:2 4096 4096 100 100 sha256 ab" + strings.Repeat("0", 62) + " 01020304 1 panic_on_corruption"
	if got.Parameters != want {
		t.Errorf("got parameters %q, want %q", got.Parameters, want)
	}
	if table.DataDevice != "PARTLABEL=METROPOLIS-SYSTEM-A" {
		t.Errorf("verityTarget modified its argument")
	}
}
