package pefile

import (
	"debug/pe"
	"errors"
	"fmt"
	"math"
)

// CertificateTable returns the file offset and size of the Authenticode
// certificate table, both zero for an unsigned image.
func (img *Image) CertificateTable() (offset, size uint32) {
	dir := img.Optional.DataDirectory[pe.IMAGE_DIRECTORY_ENTRY_SECURITY]
	return dir.VirtualAddress, dir.Size
}

// PadForCertificateTable pads the image with zeros to where a certificate
// table can start. Signers hash the image after padding it, and the padding
// is part of what they sign.
func (img *Image) PadForCertificateTable() error {
	if _, size := img.CertificateTable(); size > 0 {
		return errors.New("image is signed already")
	}
	pad := alignUp(uint64(len(img.data)), certificateAlignment) - uint64(len(img.data))
	img.data = append(img.data, make([]byte, pad)...)
	return nil
}

// AppendCertificateTable appends a certificate table to a padded image (see
// PadForCertificateTable) and points the image's security directory at it.
func (img *Image) AppendCertificateTable(table []byte) error {
	if _, size := img.CertificateTable(); size > 0 {
		return errors.New("image is signed already")
	}
	if len(img.data)%certificateAlignment != 0 || len(table)%certificateAlignment != 0 {
		return fmt.Errorf("certificate table of %d bytes at %#x: both must be multiples of %d", len(table), len(img.data), certificateAlignment)
	}
	if uint64(len(img.data))+uint64(len(table)) > math.MaxUint32 {
		return errors.New("certificate table would grow the image beyond 4 GiB")
	}
	img.Optional.DataDirectory[pe.IMAGE_DIRECTORY_ENTRY_SECURITY] = pe.DataDirectory{
		VirtualAddress: uint32(len(img.data)),
		Size:           uint32(len(table)),
	}
	img.data = append(img.data, table...)
	return nil
}
