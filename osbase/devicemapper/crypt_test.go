package devicemapper

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
)

func TestCryptTargetTable(t *testing.T) {
	key := Key(bytes.Repeat([]byte{0xab}, 64))
	ref := keyRef(len(key), "devicemapper:data")
	for _, tc := range []struct {
		name string
		c    CryptTarget
		want string
	}{
		{
			"plain",
			CryptTarget{Device: "/dev/vda4", Offset: 2048, Sectors: 4096, Cipher: "aes-xts-plain64", Key: key},
			"0 4096 crypt aes-xts-plain64 :64:logon:devicemapper:data 0 /dev/vda4 2048",
		},
		{
			"xts with 4 KiB sectors and discards",
			CryptTarget{Device: "253:1", Sectors: 4096, Cipher: "aes-xts-plain64", Key: key, SectorSize: 4096, IVLargeSectors: true, AllowDiscards: true},
			"0 4096 crypt aes-xts-plain64 :64:logon:devicemapper:data 0 253:1 0 3 allow_discards sector_size:4096 iv_large_sectors",
		},
		{
			"aead over dm-integrity",
			CryptTarget{Device: "/dev/mapper/x", Sectors: 8, Cipher: "capi:gcm(aes)-random", Key: key, SectorSize: 4096, IntegrityTagSize: 28, IntegrityType: "aead"},
			"0 8 crypt capi:gcm(aes)-random :64:logon:devicemapper:data 0 /dev/mapper/x 0 2 sector_size:4096 integrity:28:aead",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.c.check(); err != nil {
				t.Fatalf("check: %v", err)
			}
			got := tc.c.target(ref).String()
			if got != tc.want {
				t.Errorf("table line\n got %s\nwant %s", got, tc.want)
			}
		})
	}
}

func TestCryptTargetCheck(t *testing.T) {
	good := CryptTarget{Device: "/dev/vda4", Sectors: 64, Cipher: "aes-xts-plain64", Key: make(Key, 64)}
	for _, tc := range []struct {
		name   string
		change func(*CryptTarget)
		want   string
	}{
		{"no device", func(c *CryptTarget) { c.Device = "" }, "no device"},
		{"no key", func(c *CryptTarget) { c.Key = nil }, "no key"},
		{"no sectors", func(c *CryptTarget) { c.Sectors = 0 }, "no sectors"},
		{"cipher with space", func(c *CryptTarget) { c.Cipher = "aes xts" }, "white space"},
		{"odd sector size", func(c *CryptTarget) { c.SectorSize = 1000 }, "power of two"},
		{"partial sector", func(c *CryptTarget) { c.SectorSize = 4096; c.Sectors = 12 }, "whole number"},
		{"tag size without type", func(c *CryptTarget) { c.IntegrityTagSize = 28 }, "both a tag size and a type"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := good
			tc.change(&c)
			err := c.check()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("check() = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

// TestKeyRedacted checks that no formatting verb prints a key.
func TestKeyRedacted(t *testing.T) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	c := CryptTarget{Device: "/dev/vda4", Cipher: "aes-xts-plain64", Key: Key(secret)}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%x", "%X", "%q"} {
		for _, v := range []any{c, &c, c.Key} {
			out := fmt.Sprintf(verb, v)
			if strings.Contains(out, string(secret)) || strings.Contains(strings.ToLower(out), fmt.Sprintf("%x", secret)) ||
				strings.Contains(out, fmt.Sprint(secret)) {
				t.Errorf("Sprintf(%q) leaks the key: %s", verb, out)
			}
			if !strings.Contains(out, "<32-byte key>") {
				t.Errorf("Sprintf(%q) = %s, want the key shown as <32-byte key>", verb, out)
			}
		}
	}
}

func TestIntegrityTargetTable(t *testing.T) {
	for _, tc := range []struct {
		name string
		it   IntegrityTarget
		want string
	}{
		{
			"journal, 4 KiB blocks",
			IntegrityTarget{Device: "/dev/vda4", Offset: 2048, Sectors: 8192, TagSize: 28, Mode: IntegrityJournal, BlockSize: 4096},
			"0 8192 integrity /dev/vda4 2048 28 J 2 fix_padding block_size:4096",
		},
		{
			"direct, 512-byte blocks",
			IntegrityTarget{Device: "8:4", Sectors: 7, TagSize: 4, Mode: IntegrityDirect},
			"0 7 integrity 8:4 0 4 D 1 fix_padding",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.it.Target()
			if err != nil {
				t.Fatal(err)
			}
			if got.String() != tc.want {
				t.Errorf("table line\n got %s\nwant %s", got, tc.want)
			}
		})
	}
	for _, tc := range []struct {
		name string
		it   IntegrityTarget
		want string
	}{
		{"no device", IntegrityTarget{Sectors: 8, TagSize: 28, Mode: IntegrityJournal}, "no device"},
		{"no tag", IntegrityTarget{Device: "/dev/x", Sectors: 8, Mode: IntegrityJournal}, "tag size"},
		{"bad mode", IntegrityTarget{Device: "/dev/x", Sectors: 8, TagSize: 28, Mode: 'X'}, "mode"},
		{"partial block", IntegrityTarget{Device: "/dev/x", Sectors: 12, TagSize: 28, Mode: IntegrityJournal, BlockSize: 4096}, "4096-byte blocks"},
		{"bad block size", IntegrityTarget{Device: "/dev/x", Sectors: 8, TagSize: 28, Mode: IntegrityJournal, BlockSize: 8192}, "block size"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := tc.it.Target(); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Target() = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestParseIntegrityStatus(t *testing.T) {
	for _, tc := range []struct {
		status string
		want   uint64
		ok     bool
	}{
		{"0 614400 -", 614400, true},
		{"3 8 1024", 8, true},
		{"0", 0, false},
		{"0 x -", 0, false},
	} {
		got, err := parseIntegrityStatus(tc.status)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("parseIntegrityStatus(%q) = %d, %v; want %d, ok=%v", tc.status, got, err, tc.want, tc.ok)
		}
	}
}
