// Package pefile reads and rewrites the headers of PE32+ images, the format
// of UEFI applications, for the two build steps that change an image after
// it was linked: adding a unified kernel image's sections to the systemd
// stub (build/uki) and signing the result for Secure Boot (build/secureboot).
//
// It accepts only images laid out as linkers lay them out: the section data
// follows the headers without gaps, in the order of the section table, and
// only a COFF symbol table and an Authenticode certificate table may follow
// it. Checking this once when parsing keeps both users simple: appending a
// section is an insertion at one known offset, and the Authenticode hash of
// such an image is the hash of its bytes in file order, where other layouts
// leave room for signers and firmware to disagree on what was signed.
//
// Nothing here reads the clock or depends on the machine, so the same input
// always gives the same bytes.
package pefile

import (
	"bytes"
	"debug/pe"
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
)

// Layout constants of the PE/COFF specification.
const (
	dosHeaderSize     = 64
	lfanewOffset      = 0x3c
	signatureSize     = 4 // "PE\0\0"
	fileHeaderSize    = 20
	sectionHeaderSize = 40
	// checksumOffset and dataDirectoryOffset are offsets into the optional
	// header.
	checksumOffset      = 64
	dataDirectoryOffset = 112
	// certificateAlignment is the alignment of the certificate table and
	// of each certificate in it.
	certificateAlignment = 8
	// pageSize is the alignment of the virtual addresses of appended
	// sections: UEFI loaders map images in 4 KiB pages.
	pageSize = 4096
)

var optionalHeaderSize = binary.Size(pe.OptionalHeader64{})

// Image is a parsed PE32+ image whose headers can be changed and written
// back. Its fields mirror the image's headers; Bytes writes them into the
// image.
type Image struct {
	File     pe.FileHeader
	Optional pe.OptionalHeader64
	Sections []pe.SectionHeader32

	data []byte
	// ntOffset is the offset of the "PE\0\0" signature.
	ntOffset int
	// headerSlack is the number of zero bytes after the section table that
	// appended section headers may take.
	headerSlack int
}

// Parse parses a PE32+ image, checking the layout the package relies on
// (see the package comment). The Image works on a copy of data.
func Parse(data []byte) (*Image, error) {
	img := &Image{data: bytes.Clone(data)}
	if err := img.parse(); err != nil {
		return nil, fmt.Errorf("parsing PE image: %w", err)
	}
	return img, nil
}

func (img *Image) parse() error {
	d := img.data
	if len(d) < dosHeaderSize || d[0] != 'M' || d[1] != 'Z' {
		return errors.New("no MZ header")
	}
	img.ntOffset = int(binary.LittleEndian.Uint32(d[lfanewOffset:]))
	if img.ntOffset < dosHeaderSize || img.ntOffset%8 != 0 || img.ntOffset > len(d)-signatureSize-fileHeaderSize-optionalHeaderSize {
		return fmt.Errorf("PE header offset %#x is unaligned or outside the file", img.ntOffset)
	}
	if !bytes.Equal(d[img.ntOffset:img.ntOffset+signatureSize], []byte("PE\x00\x00")) {
		return errors.New("no PE signature")
	}
	r := bytes.NewReader(d[img.fileHeaderOffset():])
	if err := binary.Read(r, binary.LittleEndian, &img.File); err != nil {
		return err
	}
	if int(img.File.SizeOfOptionalHeader) != optionalHeaderSize {
		return fmt.Errorf("optional header of %d bytes, want %d (PE32+ with 16 data directories)", img.File.SizeOfOptionalHeader, optionalHeaderSize)
	}
	if err := binary.Read(r, binary.LittleEndian, &img.Optional); err != nil {
		return err
	}
	o := &img.Optional
	if o.Magic != 0x20b || o.NumberOfRvaAndSizes != 16 {
		return fmt.Errorf("optional header magic %#x with %d data directories, want PE32+ (0x20b) with 16", o.Magic, o.NumberOfRvaAndSizes)
	}
	if !isPowerOfTwo(o.FileAlignment) || o.FileAlignment < 512 || o.FileAlignment > 64<<10 {
		return fmt.Errorf("file alignment %#x, want a power of two from 512 to 64 KiB", o.FileAlignment)
	}
	if !isPowerOfTwo(o.SectionAlignment) || o.SectionAlignment < o.FileAlignment {
		return fmt.Errorf("section alignment %#x, want a power of two no less than the file alignment %#x", o.SectionAlignment, o.FileAlignment)
	}
	tableEnd := img.sectionTableOffset() + int(img.File.NumberOfSections)*sectionHeaderSize
	if o.SizeOfHeaders%o.FileAlignment != 0 || int(o.SizeOfHeaders) < tableEnd || int(o.SizeOfHeaders) > len(d) {
		return fmt.Errorf("size of headers %#x is unaligned, or smaller than its section table (%#x bytes), or larger than the file", o.SizeOfHeaders, tableEnd)
	}
	img.Sections = make([]pe.SectionHeader32, img.File.NumberOfSections)
	if err := binary.Read(bytes.NewReader(d[img.sectionTableOffset():tableEnd]), binary.LittleEndian, img.Sections); err != nil {
		return err
	}
	slack := d[tableEnd:o.SizeOfHeaders]
	img.headerSlack = len(slack) - len(bytes.TrimLeft(slack, "\x00"))
	if err := img.checkSections(); err != nil {
		return err
	}
	return img.checkTrailingData()
}

// checkSections checks that the section data is contiguous after the
// headers and that the sections' memory follows the headers in order. It
// does not insist on the section alignment: systemd's stub has a section
// that is not aligned to it.
func (img *Image) checkSections() error {
	o := &img.Optional
	fileEnd := int64(o.SizeOfHeaders)
	memEnd := uint64(o.SizeOfHeaders)
	for _, s := range img.Sections {
		name := SectionName(s)
		if s.SizeOfRawData > 0 {
			if int64(s.PointerToRawData) != fileEnd || s.SizeOfRawData%o.FileAlignment != 0 {
				return fmt.Errorf("section %s: data at %#x+%#x, want it right after the previous section's at %#x and a multiple of the file alignment %#x",
					name, s.PointerToRawData, s.SizeOfRawData, fileEnd, o.FileAlignment)
			}
			fileEnd += int64(s.SizeOfRawData)
		}
		if uint64(s.VirtualAddress) < memEnd {
			return fmt.Errorf("section %s: virtual address %#x overlaps the previous section", name, s.VirtualAddress)
		}
		// A virtual size of zero means the size of the data.
		size := s.VirtualSize
		if size == 0 {
			size = s.SizeOfRawData
		}
		memEnd = uint64(s.VirtualAddress) + uint64(size)
	}
	if fileEnd > int64(len(img.data)) {
		return fmt.Errorf("section data ends at %#x, after the end of the file at %#x", fileEnd, len(img.data))
	}
	if memEnd > uint64(o.SizeOfImage) {
		return fmt.Errorf("sections end at %#x in memory, after the size of the image %#x", memEnd, o.SizeOfImage)
	}
	return nil
}

// checkTrailingData checks that whatever follows the section data is a COFF
// symbol table or a certificate table at the end of the file.
func (img *Image) checkTrailingData() error {
	end := img.SectionsEnd()
	if p := img.File.PointerToSymbolTable; p != 0 && (int64(p) < end || int64(p) >= int64(len(img.data))) {
		return fmt.Errorf("symbol table at %#x, outside the data after the sections (%#x to %#x)", p, end, len(img.data))
	}
	if off, size := img.CertificateTable(); size > 0 {
		if int64(off) < end || int64(off)+int64(size) != int64(len(img.data)) || off%certificateAlignment != 0 {
			return fmt.Errorf("certificate table at %#x+%#x is not aligned at the end of the file (%#x bytes) after the sections", off, size, len(img.data))
		}
	}
	return nil
}

// SectionName returns a section's name.
func SectionName(s pe.SectionHeader32) string {
	return string(bytes.TrimRight(s.Name[:], "\x00"))
}

// SectionsEnd returns the offset at which the section data ends.
func (img *Image) SectionsEnd() int64 {
	end := int64(img.Optional.SizeOfHeaders)
	for _, s := range img.Sections {
		end += int64(s.SizeOfRawData)
	}
	return end
}

// Bytes writes the headers into the image, updates its checksum and
// returns it. The result is valid until the image is changed again.
func (img *Image) Bytes() []byte {
	img.File.NumberOfSections = uint16(len(img.Sections))
	var b bytes.Buffer
	// Writing fixed-size values to a bytes.Buffer cannot fail.
	_ = binary.Write(&b, binary.LittleEndian, img.File)
	_ = binary.Write(&b, binary.LittleEndian, img.Optional)
	_ = binary.Write(&b, binary.LittleEndian, img.Sections)
	copy(img.data[img.fileHeaderOffset():], b.Bytes())
	img.Optional.CheckSum = Checksum(img.data, img.ChecksumOffset())
	binary.LittleEndian.PutUint32(img.data[img.ChecksumOffset():], img.Optional.CheckSum)
	return img.data
}

func (img *Image) fileHeaderOffset() int     { return img.ntOffset + signatureSize }
func (img *Image) optionalHeaderOffset() int { return img.fileHeaderOffset() + fileHeaderSize }
func (img *Image) sectionTableOffset() int   { return img.optionalHeaderOffset() + optionalHeaderSize }

// ChecksumOffset returns the file offset of the optional header's CheckSum
// field, which Authenticode leaves out of the signed hash.
func (img *Image) ChecksumOffset() int { return img.optionalHeaderOffset() + checksumOffset }

// CertificateTableEntryOffset returns the file offset of the security data
// directory entry, which Authenticode leaves out of the signed hash.
func (img *Image) CertificateTableEntryOffset() int {
	return img.optionalHeaderOffset() + dataDirectoryOffset + 8*pe.IMAGE_DIRECTORY_ENTRY_SECURITY
}

func isPowerOfTwo(x uint32) bool { return bits.OnesCount32(x) == 1 }

func alignUp(x, align uint64) uint64 { return (x + align - 1) &^ (align - 1) }
