package pefile

import (
	"debug/pe"
	"errors"
	"fmt"
	"math"
)

// AppendSection adds a section after the last one, with its data after the
// last section's data (moving any symbol table behind it) and its memory
// after the image's, at the next 4 KiB page.
func (img *Image) AppendSection(name string, content []byte, characteristics uint32) error {
	if _, size := img.CertificateTable(); size > 0 {
		return errors.New("appending a section to a signed image would break its signature; use an unsigned image")
	}
	if len(name) == 0 || len(name) > len(pe.SectionHeader32{}.Name) {
		return fmt.Errorf("section name %q: want 1 to 8 bytes", name)
	}
	if len(content) == 0 {
		return fmt.Errorf("section %s: no content", name)
	}
	if img.headerSlack < sectionHeaderSize {
		return fmt.Errorf("section %s: no room for another section header in the image's %#x bytes of headers", name, img.Optional.SizeOfHeaders)
	}
	o := &img.Optional
	virtualAddress := alignUp(uint64(o.SizeOfImage), uint64(max(pageSize, o.SectionAlignment)))
	rawSize := alignUp(uint64(len(content)), uint64(o.FileAlignment))
	rawOffset := img.SectionsEnd()
	if virtualAddress+uint64(len(content)) > math.MaxUint32 || uint64(len(img.data))+rawSize > math.MaxUint32 {
		return fmt.Errorf("section %s: image would grow beyond 4 GiB", name)
	}

	s := pe.SectionHeader32{
		VirtualSize:      uint32(len(content)),
		VirtualAddress:   uint32(virtualAddress),
		SizeOfRawData:    uint32(rawSize),
		PointerToRawData: uint32(rawOffset),
		Characteristics:  characteristics,
	}
	copy(s.Name[:], name)
	data := make([]byte, 0, uint64(len(img.data))+rawSize)
	data = append(data, img.data[:rawOffset]...)
	data = append(data, content...)
	data = append(data, make([]byte, rawSize-uint64(len(content)))...)
	img.data = append(data, img.data[rawOffset:]...)
	if img.File.PointerToSymbolTable != 0 {
		img.File.PointerToSymbolTable += uint32(rawSize)
	}

	img.Sections = append(img.Sections, s)
	img.headerSlack -= sectionHeaderSize
	o.SizeOfImage = uint32(alignUp(virtualAddress+uint64(len(content)), uint64(o.SectionAlignment)))
	if characteristics&pe.IMAGE_SCN_CNT_INITIALIZED_DATA != 0 {
		o.SizeOfInitializedData += uint32(rawSize)
	}
	return nil
}
