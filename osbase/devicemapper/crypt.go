package devicemapper

import (
	"errors"
	"fmt"
	"runtime"
	"strings"

	"golang.org/x/sys/unix"
)

// Key is secret key material for a target. It formats as a placeholder
// whatever the verb, so that an error or log message that includes a value
// holding it, such as a CryptTarget printed with %+v, does not leak it.
type Key []byte

// Format implements fmt.Formatter.
func (k Key) Format(f fmt.State, _ rune) {
	fmt.Fprintf(f, "<%d-byte key>", len(k))
}

// CryptTarget is a dm-crypt target: the device it creates encrypts what is
// written to it onto an underlying device and decrypts what is read.
type CryptTarget struct {
	// Device holds the ciphertext: a device path, or a device number as
	// "major:minor".
	Device string
	// Offset is the first 512-byte sector of Device that the target maps.
	Offset uint64
	// Sectors is the size of the target in 512-byte sectors, a multiple of
	// SectorSize.
	Sectors uint64
	// Cipher is the encryption in dm-crypt's syntax: cipher-chainmode-ivmode
	// such as "aes-xts-plain64", or "capi:" followed by a kernel crypto API
	// name and an IV mode, such as "capi:gcm(aes)-random". The kernel must
	// have the algorithms loaded: a node has no modprobe for it to call.
	Cipher string
	// Key is the cipher's key, of the size it takes: 64 bytes for AES-256
	// in XTS mode, which splits it into two keys, 32 for AES-256-GCM.
	Key Key
	// SectorSize is the size of the units the target encrypts, a power of
	// two from 512 (the default, if zero) to 4096 bytes. Larger sectors
	// need fewer cipher calls and, with integrity tags, less metadata.
	SectorSize int
	// IVLargeSectors counts the sector numbers of IV modes such as plain64
	// in SectorSize units rather than 512-byte sectors, as cryptsetup does
	// for sectors larger than 512 bytes.
	IVLargeSectors bool
	// AllowDiscards passes discards (TRIM) down to Device. It lets an SSD
	// reclaim free space, and lets whoever reads Device see which blocks
	// are free.
	AllowDiscards bool
	// IntegrityTagSize, if not zero, is the number of bytes per sector the
	// target stores in the integrity metadata of Device, which must be a
	// dm-integrity device without a hash of its own (see IntegrityTarget).
	// With an AEAD cipher and the random IV mode they hold the IV and the
	// authentication tag: 12 + 16 = 28 bytes for GCM.
	IntegrityTagSize int
	// IntegrityType is what the integrity metadata holds: "aead" for the
	// tags of an AEAD cipher.
	IntegrityType string
}

// keyRef returns how a table names a key that is in the kernel's key
// retention service as a logon key with the given description.
func keyRef(size int, description string) string {
	return fmt.Sprintf(":%d:logon:%s", size, description)
}

// check tells why the kernel would refuse c, where that can be told without
// it.
func (c *CryptTarget) check() error {
	switch {
	case c.Device == "":
		return errors.New("dm-crypt target has no device")
	case c.Cipher == "" || strings.ContainsAny(c.Cipher, " \t\n"):
		return fmt.Errorf("dm-crypt cipher %q is empty or contains white space", c.Cipher)
	case len(c.Key) == 0:
		return errors.New("dm-crypt target has no key")
	case c.Sectors == 0:
		return errors.New("dm-crypt target has no sectors")
	case c.IntegrityTagSize < 0 || (c.IntegrityTagSize > 0) != (c.IntegrityType != ""):
		return fmt.Errorf("dm-crypt integrity needs both a tag size and a type, got %d and %q", c.IntegrityTagSize, c.IntegrityType)
	case strings.ContainsAny(c.IntegrityType, " \t\n:"):
		return fmt.Errorf("dm-crypt integrity type %q contains white space or a colon", c.IntegrityType)
	}
	if s := c.SectorSize; s != 0 {
		if s < 512 || s > 4096 || s&(s-1) != 0 {
			return fmt.Errorf("dm-crypt sector size %d is not a power of two from 512 to 4096", s)
		}
		if c.Sectors%uint64(s/512) != 0 {
			return fmt.Errorf("dm-crypt target of %d sectors is not a whole number of %d-byte sectors", c.Sectors, s)
		}
	}
	return nil
}

// target returns c as a table line that names its key by key, a reference
// such as keyRef returns, so that the table never holds the key itself.
func (c *CryptTarget) target(key string) Target {
	var opts []string
	if c.AllowDiscards {
		opts = append(opts, "allow_discards")
	}
	if c.SectorSize != 0 && c.SectorSize != 512 {
		opts = append(opts, fmt.Sprintf("sector_size:%d", c.SectorSize))
	}
	if c.IVLargeSectors {
		opts = append(opts, "iv_large_sectors")
	}
	if c.IntegrityTagSize > 0 {
		opts = append(opts, fmt.Sprintf("integrity:%d:%s", c.IntegrityTagSize, c.IntegrityType))
	}
	// The IV offset is always 0: the IVs count from the target's start.
	params := fmt.Sprintf("%s %s 0 %s %d", c.Cipher, key, c.Device, c.Offset)
	if len(opts) > 0 {
		params += fmt.Sprintf(" %d %s", len(opts), strings.Join(opts, " "))
	}
	return Target{Length: c.Sectors, Type: "crypt", Parameters: params}
}

// CreateCryptDevice creates a device-mapper device called name with the one
// dm-crypt target c, and activates it, like CreateDevice.
//
// The key never appears in the table, where Table would return it and any
// code logging tables would print it: it goes to the kernel as a logon key
// of the kernel's key retention service, which user space cannot read back,
// in the keyring of a thread that exists only for this call, and the table
// names it by description. dm-crypt copies the key when the table is loaded;
// the key is invalidated right after and the thread ends, taking its
// keyring with it.
func CreateCryptDevice(name string, c CryptTarget) (uint64, error) {
	if err := checkName(name); err != nil {
		return 0, fmt.Errorf("devicemapper: creating device: %w", err)
	}
	if err := c.check(); err != nil {
		return 0, fmt.Errorf("devicemapper: creating device %q: %w", name, err)
	}
	var dev uint64
	err := withLogonKey("devicemapper:"+name, c.Key, func(ref string) error {
		var err error
		dev, err = CreateDevice(name, false, []Target{c.target(ref)})
		return err
	})
	return dev, err
}

// withLogonKey adds key to the kernel's key retention service as a logon
// key with the given description, calls fn with the reference a dm-crypt
// table uses for it, and invalidates the key. fn runs on the thread whose
// keyring holds the key, which is the keyring the kernel searches when fn's
// system calls ask for it.
func withLogonKey(description string, key Key, fn func(ref string) error) error {
	errc := make(chan error, 1)
	go func() {
		// The thread is never unlocked: it ends with this goroutine, and
		// its thread keyring with it.
		runtime.LockOSThread()
		id, err := unix.AddKey("logon", description, key, unix.KEY_SPEC_THREAD_KEYRING)
		if err != nil {
			errc <- fmt.Errorf("devicemapper: passing the key to the kernel's key retention service: %w", err)
			return
		}
		ferr := fn(keyRef(len(key), description))
		if _, err := unix.KeyctlInt(unix.KEYCTL_INVALIDATE, id, 0, 0, 0); err != nil {
			ferr = errors.Join(ferr, fmt.Errorf("devicemapper: invalidating the key in the kernel's key retention service: %w", err))
		}
		errc <- ferr
	}()
	return <-errc
}
