package uki

import (
	"bytes"
	"debug/pe"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

func testContents() Contents {
	return Contents{
		Kernel:    fakeKernel(3<<20 + 17),
		Initramfs: bytes.Repeat([]byte("initramfs"), 100_001),
		Cmdline:   "console=ttyS0 quiet",
		OSRelease: []byte("NAME=\"Metropolis\"\nID=metropolis-node\n"),
	}
}

// section is a section Build adds.
type section struct {
	name    string
	content []byte
}

// wantSections lists the sections Build adds for c, in order.
func wantSections(c Contents) []section {
	s := []section{
		{SectionOSRelease, c.OSRelease},
		{SectionCmdline, []byte(c.Cmdline)},
		{SectionLinux, c.Kernel},
	}
	if len(c.Initramfs) > 0 {
		s = append(s, section{SectionInitrd, c.Initramfs})
	}
	return s
}

func build(t *testing.T, c Contents) []byte {
	t.Helper()
	out, err := Build(testStub(t), c)
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	return out
}

// TestBuild checks the UKI with debug/pe: the stub's sections are
// unchanged, the added ones hold their contents exactly, lie behind the
// stub's image in memory on their own pages, and the headers agree.
func TestBuild(t *testing.T) {
	stub := testStub(t)
	for _, tc := range []struct {
		name     string
		contents Contents
	}{
		{"with initramfs", testContents()},
		{"without initramfs", func() Contents { c := testContents(); c.Initramfs = nil; return c }()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			uki := build(t, tc.contents)
			stubFile, err := pe.NewFile(bytes.NewReader(stub))
			if err != nil {
				t.Fatal(err)
			}
			f, err := pe.NewFile(bytes.NewReader(uki))
			if err != nil {
				t.Fatalf("debug/pe cannot parse the UKI: %v", err)
			}
			want := wantSections(tc.contents)
			if len(f.Sections) != len(stubFile.Sections)+len(want) {
				t.Fatalf("%d sections, want the stub's %d and %d more", len(f.Sections), len(stubFile.Sections), len(want))
			}
			for i, s := range stubFile.Sections {
				if f.Sections[i].SectionHeader != s.SectionHeader || !bytes.Equal(sectionData(t, f.Sections[i]), sectionData(t, s)) {
					t.Errorf("stub section %s changed", s.Name)
				}
			}
			stubOpt := stubFile.OptionalHeader.(*pe.OptionalHeader64)
			opt := f.OptionalHeader.(*pe.OptionalHeader64)
			prevEnd := stubOpt.SizeOfImage
			for i, w := range want {
				s := f.Sections[len(stubFile.Sections)+i]
				if s.Name != w.name {
					t.Fatalf("section %d is %s, want %s", len(stubFile.Sections)+i, s.Name, w.name)
				}
				if got := sectionData(t, s); !bytes.Equal(got, w.content) {
					t.Errorf("section %s holds %d bytes that differ from the %d given", s.Name, len(got), len(w.content))
				}
				if s.VirtualAddress < prevEnd || s.VirtualAddress%4096 != 0 {
					t.Errorf("section %s at %#x: want a 4 KiB page at or after %#x", s.Name, s.VirtualAddress, prevEnd)
				}
				if s.Characteristics != pe.IMAGE_SCN_CNT_INITIALIZED_DATA|pe.IMAGE_SCN_MEM_READ {
					t.Errorf("section %s has characteristics %#x, want read-only initialized data", s.Name, s.Characteristics)
				}
				prevEnd = s.VirtualAddress + s.VirtualSize
			}
			if opt.SizeOfImage < prevEnd || opt.SizeOfImage%opt.SectionAlignment != 0 {
				t.Errorf("size of image %#x: want the aligned end of the last section, %#x", opt.SizeOfImage, prevEnd)
			}
			if f.NumberOfSymbols != stubFile.NumberOfSymbols || len(f.Symbols) != len(stubFile.Symbols) {
				t.Errorf("%d symbols, want the stub's %d", len(f.Symbols), len(stubFile.Symbols))
			}
		})
	}
}

// sectionData returns the bytes of a section the loader puts in memory.
func sectionData(t *testing.T, s *pe.Section) []byte {
	t.Helper()
	data, err := s.Data()
	if err != nil {
		t.Fatalf("reading section %s: %v", s.Name, err)
	}
	if len(data) < int(s.VirtualSize) {
		t.Fatalf("section %s has %d bytes of data, less than its virtual size %d", s.Name, len(data), s.VirtualSize)
	}
	if !bytes.Equal(data[s.VirtualSize:], make([]byte, len(data)-int(s.VirtualSize))) {
		t.Errorf("section %s: padding after its %d bytes is not zero", s.Name, s.VirtualSize)
	}
	return data[:s.VirtualSize]
}

// objdumpRow matches a section in the output of objdump -h: index, name,
// size, VMA, LMA, file offset.
var objdumpRow = regexp.MustCompile(`(?m)^\s*\d+\s+(\S+)\s+([0-9a-f]+)\s+([0-9a-f]+)\s+[0-9a-f]+\s+([0-9a-f]+)\s`)

// TestBinutilsAgree checks the UKI with GNU binutils, the tools systemd's
// documentation builds UKIs with: objdump must list the sections where
// debug/pe sees them, and objcopy must extract their exact contents.
func TestBinutilsAgree(t *testing.T) {
	requireTool(t, "objdump", "binutils")
	requireTool(t, "objcopy", "binutils")
	c := testContents()
	path := filepath.Join(t.TempDir(), "uki.efi")
	if err := os.WriteFile(path, build(t, c), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("objdump", "-h", path).CombinedOutput()
	if err != nil {
		t.Fatalf("objdump -h: %v\n%s", err, out)
	}
	f, err := pe.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows := objdumpRow.FindAllStringSubmatch(string(out), -1)
	if len(rows) != len(f.Sections) {
		t.Fatalf("objdump lists %d sections, debug/pe %d:\n%s", len(rows), len(f.Sections), out)
	}
	for i, row := range rows {
		s := f.Sections[i]
		got := fmt.Sprintf("%s size %s vma %s offset %s", row[1], trimHex(row[2]), trimHex(row[3]), trimHex(row[4]))
		want := fmt.Sprintf("%s size %x vma %x offset %x", s.Name, s.VirtualSize, s.VirtualAddress, s.Offset)
		if got != want {
			t.Errorf("objdump: %s; debug/pe: %s", got, want)
		}
	}

	for _, w := range wantSections(c) {
		extracted := filepath.Join(t.TempDir(), w.name)
		if out, err := exec.Command("objcopy", "-O", "binary", "--only-section="+w.name, path, extracted).CombinedOutput(); err != nil {
			t.Fatalf("objcopy: %v\n%s", err, out)
		}
		got, err := os.ReadFile(extracted)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, w.content) {
			t.Errorf("objcopy extracted %d bytes from %s that differ from the %d given", len(got), w.name, len(w.content))
		}
	}
}

func trimHex(s string) string {
	n, _ := strconv.ParseUint(s, 16, 64)
	return strconv.FormatUint(n, 16)
}

func TestBuildReproducible(t *testing.T) {
	a, b := build(t, testContents()), build(t, testContents())
	if !bytes.Equal(a, b) {
		t.Error("two builds from the same inputs differ")
	}
}

func TestBuildErrors(t *testing.T) {
	stub := testStub(t)
	uki := build(t, testContents())
	arm := bytes.Clone(stub)
	binary.LittleEndian.PutUint16(arm[binary.LittleEndian.Uint32(arm[0x3c:])+4:], pe.IMAGE_FILE_MACHINE_ARM64)
	for _, tc := range []struct {
		name   string
		stub   []byte
		change func(c *Contents)
		want   string
	}{
		{"no kernel", stub, func(c *Contents) { c.Kernel = nil }, "kernel: 0 bytes"},
		{"not a bzImage", stub, func(c *Contents) { c.Kernel = bytes.Repeat([]byte{1}, 8192) }, "not an x86 bzImage"},
		{"empty command line", stub, func(c *Contents) { c.Cmdline = "" }, "command line is empty"},
		{"NUL in command line", stub, func(c *Contents) { c.Cmdline = "quiet\x00root=/dev/sda" }, "byte 0x00"},
		{"command line too long", stub, func(c *Contents) { c.Cmdline = strings.Repeat("q", 2048) }, "limit of 2047"},
		{"no os-release", stub, func(c *Contents) { c.OSRelease = nil }, "os-release is empty"},
		{"stub is not PE", []byte("#!/bin/sh\n"), func(*Contents) {}, "stub: parsing PE image"},
		{"stub for another machine", arm, func(*Contents) {}, "want an x86-64 (0x8664) UEFI application"},
		{"stub is a UKI", uki, func(*Contents) {}, "has a .osrel section already"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := testContents()
			tc.change(&c)
			_, err := Build(tc.stub, c)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Build: got error %v, want one containing %q", err, tc.want)
			}
		})
	}
}
