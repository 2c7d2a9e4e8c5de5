package localstorage

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"

	"golang.org/x/sys/unix"

	"metropolis.dev/metropolis/node/core/localstorage/crypt"
	"metropolis.dev/metropolis/node/core/localstorage/declarative"
	cpb "metropolis.dev/metropolis/proto/common"
	ppb "metropolis.dev/metropolis/proto/private"
	"metropolis.dev/osbase/supervisor"
	"metropolis.dev/osbase/tpm"
)

const (
	// mkfsXFS is the mkfs.xfs of the node's system image.
	mkfsXFS = "/bin/mkfs.xfs"
	// minDataSize is the smallest filesystem mkfs.xfs makes.
	minDataSize = 300 << 20
	// dataDeviceName is the device-mapper name of the data partition's
	// mapping.
	dataDeviceName = "data"
	// dataFlags are the mount flags of the data partition: nothing runs
	// from it or opens devices on it directly (containers get mounts of
	// their own).
	dataFlags = unix.MS_NOEXEC | unix.MS_NODEV | unix.MS_NOSUID
	// dataOptions enables project quotas, with which the node limits the
	// size of local volumes.
	dataOptions = "prjquota"
)

// MountNew makes the data partition new, destroying what it held, and
// mounts it: on the node's first boot. It grows the partition to the end
// of the disk first. For the encrypted modes it generates the node unlock
// key (NUK) and the cluster unlock key (CUK), from the kernel's and, if t
// is not nil, the TPM's random number generators; the data key is their
// XOR. It writes the sealed configuration to the ESP, holding the NUK and
// the mode, sealed by t if not nil, and returns the CUK (nil for
// INSECURE), which the caller hands to the cluster.
//
// ctx is that of a runnable: mkfs runs as its child.
func (d *DataDirectory) MountNew(ctx context.Context, security cpb.NodeStorageSecurity, t *tpm.TPM) (cuk []byte, err error) {
	switch security {
	case cpb.NodeStorageSecurity_NODE_STORAGE_SECURITY_INSECURE,
		cpb.NodeStorageSecurity_NODE_STORAGE_SECURITY_ENCRYPTED,
		cpb.NodeStorageSecurity_NODE_STORAGE_SECURITY_AUTHENTICATED_ENCRYPTED:
	default:
		return nil, fmt.Errorf("localstorage: storage security %v is not one of INSECURE, ENCRYPTED and AUTHENTICATED_ENCRYPTED", security)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	disk, err := d.checkUnmounted()
	if err != nil {
		return nil, err
	}
	log := supervisor.Logger(ctx)

	var nuk, key []byte
	if security != cpb.NodeStorageSecurity_NODE_STORAGE_SECURITY_INSECURE {
		if nuk, err = newKey(t); err != nil {
			return nil, err
		}
		if cuk, err = newKey(t); err != nil {
			return nil, err
		}
		if key, err = crypt.DataKey(nuk, cuk); err != nil {
			return nil, err
		}
		defer clear(key)
	}

	from, to, err := disk.growData()
	if err != nil {
		return nil, fmt.Errorf("localstorage: growing the data partition: %w", err)
	}
	if to != from {
		log.Infof("Grew the data partition %s from %d to %d MiB, to the end of the disk", disk.data.path, from>>20, to>>20)
	}

	log.Infof("Formatting the data partition %s (%v)", disk.data.path, security)
	nextPercent := int64(10)
	m, err := crypt.Format(ctx, crypt.Partition{Path: disk.data.path, Name: dataDeviceName}, security, key, func(done, total int64) {
		if p := done * 100 / total; p >= nextPercent {
			log.Infof("Initialized the integrity tags of %d%% of the data partition", p)
			nextPercent = p/10*10 + 10
		}
	})
	if err != nil {
		return nil, fmt.Errorf("localstorage: formatting the data partition: %w", err)
	}
	// A child's name is taken for the rest of its parent's run, in which
	// MountNew may be called again after failing.
	d.formats++
	mkfsName := "mkfs"
	if d.formats > 1 {
		mkfsName = fmt.Sprintf("mkfs-%d", d.formats)
	}
	if err := mkfs(ctx, mkfsName, m); err != nil {
		return nil, errors.Join(err, m.Close())
	}
	if err := d.mount(m); err != nil {
		return nil, err
	}

	sc := &ppb.SealedConfiguration{NodeUnlockKey: nuk, StorageSecurity: security}
	if err := d.root.ESP.Metropolis.SealedConfiguration.Seal(sc, t); err != nil {
		return nil, errors.Join(err, d.unmount())
	}
	log.Infof("Mounted the new data partition")
	return cuk, nil
}

// MountExisting mounts the data partition that MountNew made, on every boot
// after the first, with the sealed configuration from the ESP and the
// cluster unlock key (nil for INSECURE). A wrong key fails with an error
// matching crypt.ErrWrongKey, and leaves the partition untouched.
func (d *DataDirectory) MountExisting(ctx context.Context, sealed *ppb.SealedConfiguration, cuk []byte) error {
	if sealed == nil {
		return errors.New("localstorage: mounting the data partition needs the sealed configuration")
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	disk, err := d.checkUnmounted()
	if err != nil {
		return err
	}
	security := sealed.GetStorageSecurity()
	var key []byte
	if security == cpb.NodeStorageSecurity_NODE_STORAGE_SECURITY_INSECURE {
		if len(sealed.GetNodeUnlockKey()) != 0 || len(cuk) != 0 {
			return errors.New("localstorage: an unencrypted data partition takes no unlock keys, but got some")
		}
	} else {
		if key, err = crypt.DataKey(sealed.GetNodeUnlockKey(), cuk); err != nil {
			return fmt.Errorf("localstorage: %w", err)
		}
		defer clear(key)
	}
	m, err := crypt.Map(crypt.Partition{Path: disk.data.path, Name: dataDeviceName}, security, key)
	if err != nil {
		return fmt.Errorf("localstorage: setting up the data partition %s: %w", disk.data.path, err)
	}
	if err := d.mount(m); err != nil {
		return err
	}
	supervisor.Logger(ctx).Infof("Mounted the data partition %s (%v)", disk.data.path, security)
	return nil
}

// Unmount unmounts the data partition and removes its mapping. It is not
// an error if it is not mounted.
func (d *DataDirectory) Unmount() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.unmount()
}

func (d *DataDirectory) unmount() error {
	if d.mapping == nil {
		return nil
	}
	if err := unix.Unmount(d.FullPath(), 0); err != nil {
		return fmt.Errorf("localstorage: unmounting the data partition: %w", err)
	}
	m := d.mapping
	d.mapping = nil
	return m.Close()
}

// checkUnmounted returns the node's disk, failing if the data partition is
// mounted or the tree not started.
func (d *DataDirectory) checkUnmounted() (*nodeDisk, error) {
	d.root.mu.Lock()
	disk := d.root.disk
	d.root.mu.Unlock()
	switch {
	case disk == nil:
		return nil, errors.New("localstorage: the node's disk is not known yet (Start)")
	case d.mapping != nil:
		return nil, errors.New("localstorage: the data partition is mounted already")
	}
	return disk, nil
}

// mount mounts the filesystem on the mapping and creates the data
// directories. It closes the mapping if it fails.
func (d *DataDirectory) mount(m *crypt.Mapping) error {
	err := os.MkdirAll(d.FullPath(), 0o755)
	if err == nil {
		err = unix.Mount(m.Path(), d.FullPath(), "xfs", dataFlags, dataOptions)
	}
	if err != nil {
		return errors.Join(fmt.Errorf("localstorage: mounting the data partition: %w", err), m.Close())
	}
	d.mapping = m
	if err := declarative.MkdirAll(d, 0o700); err != nil {
		return errors.Join(fmt.Errorf("localstorage: %w", err), d.unmount())
	}
	return nil
}

// mkfs makes an XFS filesystem on the mapping, running mkfs.xfs as the
// child runnable name of ctx's, so that its output is in the log tree.
func mkfs(ctx context.Context, name string, m *crypt.Mapping) error {
	f, err := os.Open(m.Path())
	if err != nil {
		return fmt.Errorf("localstorage: %w", err)
	}
	size, err := f.Seek(0, io.SeekEnd)
	f.Close()
	if err != nil {
		return fmt.Errorf("localstorage: %w", err)
	}
	if size < minDataSize {
		return fmt.Errorf("localstorage: the data partition holds %d MiB, less than the %d MiB of the smallest XFS filesystem", size>>20, minDataSize>>20)
	}
	// -K: no discard of the whole device first, which can take minutes
	// on some disks and gains nothing on a partition just formatted.
	cmd := exec.Command(mkfsXFS, "-q", "-f", "-K", m.Path())
	return runOnce(ctx, name, cmd)
}

// runOnce runs cmd as the supervised child runnable name of ctx's runnable
// and returns how it ended. A command that fails is reported to the
// caller, not restarted.
func runOnce(ctx context.Context, name string, cmd *exec.Cmd) error {
	result := make(chan error, 1)
	err := supervisor.Run(ctx, name, func(ctx context.Context) error {
		err := supervisor.RunCommand(ctx, cmd, supervisor.DoneOnSuccess(), supervisor.NoHealthySignal())
		if err != nil {
			supervisor.Signal(ctx, supervisor.SignalDone)
		}
		result <- err
		return nil
	})
	if err != nil {
		return fmt.Errorf("localstorage: starting %s: %w", name, err)
	}
	select {
	case err := <-result:
		if err != nil {
			return fmt.Errorf("localstorage: %s: %w", name, err)
		}
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// newKey returns a new unlock key from the kernel's random number
// generator XORed with the TPM's, if t is not nil, so that the key is as
// good as the better of the two.
func newKey(t *tpm.TPM) ([]byte, error) {
	key := make([]byte, crypt.KeySize)
	rand.Read(key) // Never fails, see crypto/rand.Read.
	if t != nil {
		r, err := t.GenerateRandom(crypt.KeySize)
		if err != nil {
			return nil, fmt.Errorf("localstorage: %w", err)
		}
		for i := range key {
			key[i] ^= r[i]
		}
	}
	return key, nil
}
