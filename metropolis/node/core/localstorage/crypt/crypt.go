package crypt

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	cpb "metropolis.dev/metropolis/proto/common"
	"metropolis.dev/osbase/blockdev"
	"metropolis.dev/osbase/devicemapper"
)

// Parameters of the mapped devices.
const (
	// sectorSize is the sector size of dm-crypt and the block size of
	// dm-integrity: the page size, which the filesystem uses anyway, with
	// an eighth of the cipher calls and integrity tags of 512-byte
	// sectors.
	sectorSize = 4096
	// xtsCipher and xtsKeySize are the cipher of ENCRYPTED: AES-256 in
	// XTS mode, which takes two 256-bit keys.
	xtsCipher  = "aes-xts-plain64"
	xtsKeySize = 64
	// gcmCipher, gcmKeySize and gcmTagSize are the AEAD of
	// AUTHENTICATED_ENCRYPTED: AES-256-GCM with a random IV per write,
	// kept with the tag in dm-integrity's metadata: 12 bytes of IV and
	// 16 of tag.
	gcmCipher  = "capi:gcm(aes)-random"
	gcmKeySize = 32
	gcmTagSize = 28
)

// Partition is a data partition and the names of the devices made of it.
type Partition struct {
	// Path is the partition's block device.
	Path string
	// Name is the name of the device-mapper device holding the
	// filesystem. The dm-integrity device below it, if there is one, is
	// called Name-integrity.
	Name string
}

func (p Partition) integrityName() string { return p.Name + "-integrity" }

// Mapping is a data partition set up as a block device.
type Mapping struct {
	// devices are the device-mapper devices, the top one first.
	devices []string
	path    string
}

// Path returns the block device holding the filesystem.
func (m *Mapping) Path() string { return m.path }

// Close removes the devices, which must not be in use (mounted) any more.
func (m *Mapping) Close() error {
	for i, name := range m.devices {
		if err := devicemapper.RemoveDevice(name); err != nil {
			m.devices = m.devices[i:]
			return fmt.Errorf("crypt: %w", err)
		}
	}
	m.devices = nil
	return nil
}

// Progress is told how far Format got initializing the integrity tags, in
// bytes.
type Progress func(done, total int64)

// Format makes p a new data partition for security, destroying what it
// held, and sets it up. key is the data key (see DataKey), nil for
// INSECURE. In the AUTHENTICATED_ENCRYPTED mode it writes the whole
// partition (see the package documentation), telling progress, if not nil,
// how far it got; ctx cancels that.
//
// The header is written last, so that a partition whose formatting was
// interrupted is not taken for one that holds data.
func Format(ctx context.Context, p Partition, security cpb.NodeStorageSecurity, key []byte, progress Progress) (*Mapping, error) {
	if err := checkKey(security, key); err != nil {
		return nil, fmt.Errorf("crypt: formatting %s: %w", p.Path, err)
	}
	f, err := os.OpenFile(p.Path, os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("crypt: %w", err)
	}
	defer f.Close()
	payload, err := payloadSectors(f)
	if err != nil {
		return nil, err
	}
	if err := blockdev.Zero(f, 0, payloadOffset); err != nil {
		return nil, fmt.Errorf("crypt: wiping the old header: %w", err)
	}
	if security == cpb.NodeStorageSecurity_NODE_STORAGE_SECURITY_AUTHENTICATED_ENCRYPTED {
		if err := initializeIntegrity(ctx, f, p, key, progress); err != nil {
			return nil, err
		}
	}
	m, err := mapPayload(p, security, key, payload)
	if err != nil {
		return nil, err
	}
	if _, err := f.WriteAt(newHeader(security, key).marshal(), 0); err != nil {
		return nil, errors.Join(fmt.Errorf("crypt: writing the header: %w", err), m.Close())
	}
	if err := f.Sync(); err != nil {
		return nil, errors.Join(fmt.Errorf("crypt: writing the header: %w", err), m.Close())
	}
	return m, nil
}

// Map sets up p, which Format made a data partition for security with key
// (nil for INSECURE). It reads and checks the header first and touches
// nothing if the partition is not formatted (ErrNotFormatted), formatted
// for another mode, or the key is not its key (ErrWrongKey).
func Map(p Partition, security cpb.NodeStorageSecurity, key []byte) (*Mapping, error) {
	if err := checkKey(security, key); err != nil {
		return nil, fmt.Errorf("crypt: mapping %s: %w", p.Path, err)
	}
	f, err := os.Open(p.Path)
	if err != nil {
		return nil, fmt.Errorf("crypt: %w", err)
	}
	defer f.Close()
	payload, err := payloadSectors(f)
	if err != nil {
		return nil, err
	}
	b := make([]byte, headerSize)
	if _, err := f.ReadAt(b, 0); err != nil {
		return nil, fmt.Errorf("crypt: reading the header of %s: %w", p.Path, err)
	}
	h, err := parseHeader(b)
	if err != nil {
		return nil, err
	}
	if err := h.verify(security, key); err != nil {
		return nil, err
	}
	return mapPayload(p, security, key, payload)
}

// payloadSectors returns the size of the payload of the partition f in
// 512-byte sectors, whole 4 KiB sectors after the header.
func payloadSectors(f *os.File) (uint64, error) {
	size, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return 0, fmt.Errorf("crypt: size of %s: %w", f.Name(), err)
	}
	if size < payloadOffset+sectorSize {
		return 0, fmt.Errorf("crypt: the partition %s has %d bytes, too few for a data partition", f.Name(), size)
	}
	return uint64((size-payloadOffset)/sectorSize) * (sectorSize / 512), nil
}

// integrityTarget returns the dm-integrity target on the payload of p.
func integrityTarget(p Partition, mode devicemapper.IntegrityMode) devicemapper.IntegrityTarget {
	return devicemapper.IntegrityTarget{
		Device:    p.Path,
		Offset:    payloadOffset / 512,
		TagSize:   gcmTagSize,
		Mode:      mode,
		BlockSize: sectorSize,
	}
}

// mapPayload creates the devices of security on the payload of p.
func mapPayload(p Partition, security cpb.NodeStorageSecurity, key []byte, payload uint64) (*Mapping, error) {
	switch security {
	case cpb.NodeStorageSecurity_NODE_STORAGE_SECURITY_INSECURE:
		dev, err := devicemapper.CreateDevice(p.Name, false, []devicemapper.Target{{
			Length:     payload,
			Type:       "linear",
			Parameters: fmt.Sprintf("%s %d", p.Path, payloadOffset/512),
		}})
		if err != nil {
			return nil, fmt.Errorf("crypt: %w", err)
		}
		return &Mapping{devices: []string{p.Name}, path: devicemapper.DevicePath(dev)}, nil
	case cpb.NodeStorageSecurity_NODE_STORAGE_SECURITY_ENCRYPTED:
		xtsKey := deriveKey(key, purposeXTS, xtsKeySize)
		defer clear(xtsKey)
		dev, err := devicemapper.CreateCryptDevice(p.Name, devicemapper.CryptTarget{
			Device:         p.Path,
			Offset:         payloadOffset / 512,
			Sectors:        payload,
			Cipher:         xtsCipher,
			Key:            xtsKey,
			SectorSize:     sectorSize,
			IVLargeSectors: true,
			AllowDiscards:  true,
		})
		if err != nil {
			return nil, fmt.Errorf("crypt: %w", err)
		}
		return &Mapping{devices: []string{p.Name}, path: devicemapper.DevicePath(dev)}, nil
	default:
		return mapAuthenticated(p, key, devicemapper.IntegrityJournal)
	}
}

// mapAuthenticated creates the dm-integrity device with the given mode
// and the dm-crypt device on top of it.
func mapAuthenticated(p Partition, key []byte, mode devicemapper.IntegrityMode) (*Mapping, error) {
	it := integrityTarget(p, mode)
	sectors, err := devicemapper.IntegrityDataSectors(p.integrityName(), it)
	if err != nil {
		return nil, fmt.Errorf("crypt: reading the dm-integrity superblock: %w", err)
	}
	it.Sectors = sectors
	target, err := it.Target()
	if err != nil {
		return nil, fmt.Errorf("crypt: %w", err)
	}
	itDev, err := devicemapper.CreateDevice(p.integrityName(), false, []devicemapper.Target{target})
	if err != nil {
		return nil, fmt.Errorf("crypt: %w", err)
	}
	below := &Mapping{devices: []string{p.integrityName()}}
	gcmKey := deriveKey(key, purposeGCM, gcmKeySize)
	defer clear(gcmKey)
	dev, err := devicemapper.CreateCryptDevice(p.Name, devicemapper.CryptTarget{
		Device:           devicemapper.DevicePath(itDev),
		Sectors:          sectors,
		Cipher:           gcmCipher,
		Key:              gcmKey,
		SectorSize:       sectorSize,
		IntegrityTagSize: gcmTagSize,
		IntegrityType:    "aead",
	})
	if err != nil {
		return nil, errors.Join(fmt.Errorf("crypt: %w", err), below.Close())
	}
	return &Mapping{devices: []string{p.Name, p.integrityName()}, path: devicemapper.DevicePath(dev)}, nil
}

// wipeChunk is how much initializeIntegrity writes between looking at its
// context and reporting progress.
const wipeChunk = 64 << 20

// initializeIntegrity formats dm-integrity on the payload of the
// partition f and writes every block once through dm-crypt, so that every
// block has a valid tag.
func initializeIntegrity(ctx context.Context, f *os.File, p Partition, key []byte, progress Progress) (err error) {
	// The kernel formats a dm-integrity device whose superblock, right
	// after the header's MiB, starts with a zero sector.
	if err := blockdev.Zero(f, payloadOffset, sectorSize); err != nil {
		return fmt.Errorf("crypt: wiping the old dm-integrity superblock: %w", err)
	}
	m, err := mapAuthenticated(p, key, devicemapper.IntegrityDirect)
	if err != nil {
		return err
	}
	defer func() {
		err = errors.Join(err, m.Close())
	}()
	dev, err := os.OpenFile(m.Path(), os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("crypt: %w", err)
	}
	defer dev.Close()
	total, err := dev.Seek(0, io.SeekEnd)
	if err != nil {
		return fmt.Errorf("crypt: %w", err)
	}
	for done := int64(0); done < total; {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("crypt: initializing integrity tags: %w", err)
		}
		n := min(wipeChunk, total-done)
		// dm-crypt cannot offload zeroing, so the kernel writes zero
		// pages, which dm-crypt encrypts and tags like any write.
		if err := blockdev.Zero(dev, done, n); err != nil {
			return fmt.Errorf("crypt: initializing integrity tags: %w", err)
		}
		done += n
		if progress != nil {
			progress(done, total)
		}
	}
	return nil
}
