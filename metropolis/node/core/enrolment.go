package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"metropolis.dev/metropolis/node/core/cluster"
	"metropolis.dev/metropolis/node/core/localstorage"
	cpb "metropolis.dev/metropolis/proto/common"
	ppb "metropolis.dev/metropolis/proto/private"
	"metropolis.dev/osbase/event"
	"metropolis.dev/osbase/event/memory"
	"metropolis.dev/osbase/supervisor"
	"metropolis.dev/osbase/tpm"
)

// storageStatus is the state of the data partition. Values are never
// changed once published.
type storageStatus struct {
	// Mounted is set once the data partition is mounted.
	Mounted  bool
	Security cpb.NodeStorageSecurity
	// New is set if the partition was made on this boot.
	New bool
	// Created is when the partition's filesystem was made, zero if
	// unknown. The same time on two boots tells that the second found
	// what the first made.
	Created time.Time
	// Problem says why the partition is not mounted, if it is not.
	Problem string
}

// reportedDataPartition is the data partition as the cluster manager mounts
// it, reporting each mount on the console and in the node's status.
type reportedDataPartition struct {
	data   *localstorage.DataDirectory
	status *memory.Value[*storageStatus]
}

func (d *reportedDataPartition) MountNew(ctx context.Context, security cpb.NodeStorageSecurity, t *tpm.TPM) ([]byte, error) {
	d.status.Set(&storageStatus{Security: security, Problem: "being set up"})
	cuk, err := d.data.MountNew(ctx, security, t)
	if err != nil {
		return nil, err
	}
	d.mounted(ctx, security, true)
	return cuk, nil
}

func (d *reportedDataPartition) MountExisting(ctx context.Context, sealed *ppb.SealedConfiguration, cuk []byte) error {
	if err := d.data.MountExisting(ctx, sealed, cuk); err != nil {
		return err
	}
	d.mounted(ctx, sealed.StorageSecurity, false)
	return nil
}

func (d *reportedDataPartition) mounted(ctx context.Context, security cpb.NodeStorageSecurity, isNew bool) {
	created := birthTime(d.data.FullPath())
	when := "at an unknown time"
	if !created.IsZero() {
		when = created.UTC().Format(time.RFC3339Nano)
	}
	origin := "set up on an earlier boot"
	if isNew {
		origin = "set up on this boot"
	}
	supervisor.Logger(ctx).Infof("Data partition ready: %s, %s, filesystem created %s", securityName(security), origin, when)
	d.status.Set(&storageStatus{Mounted: true, Security: security, New: isNew, Created: created})
}

// enrolment runs the cluster manager, which enrols the node in its cluster
// once per boot. The data partition stays mounted until the node stops;
// the kernel syncs it then, and its journal covers the rest.
type enrolment struct {
	manager *cluster.Manager
	storage *memory.Value[*storageStatus]
}

// run is the enrolment's runnable. A failed enrolment is not retried: it
// may have changed the disk, and what went wrong (a different TPM, a
// cluster that refuses the node) needs an operator. It is reported, and
// the node waits.
func (e *enrolment) run(ctx context.Context) error {
	err := e.manager.Run(ctx)
	if err == nil || ctx.Err() != nil {
		return err
	}
	problem := explainEnrolmentError(err)
	log := supervisor.Logger(ctx)
	log.Errorf("Cluster enrolment failed: %s", problem)
	w := e.storage.Watch()
	defer w.Close()
	if st, _ := w.Get(ctx, event.BacklogOnly[*storageStatus]()); st == nil || !st.Mounted {
		log.Errorf("The data partition cannot be mounted: %s", problem)
		e.storage.Set(&storageStatus{Problem: problem})
	}
	<-ctx.Done()
	return ctx.Err()
}

// explainEnrolmentError says why enrolment failed, and what that means.
func explainEnrolmentError(err error) string {
	const untouched = "; the data partition was left untouched"
	switch {
	case errors.Is(err, tpm.ErrWrongTPM):
		return "the node's sealed configuration was sealed by a different TPM: this disk was set up in another machine, or this machine's TPM was cleared (" + err.Error() + ")" + untouched
	case errors.Is(err, tpm.ErrPolicyMismatch):
		return "the node's Secure Boot state changed since its configuration was sealed (" + err.Error() + ")" + untouched
	}
	return err.Error()
}

// openTPM opens the node's TPM, or returns nil if it has none.
func openTPM() (*tpm.TPM, error) {
	t, err := tpm.Open(tpm.DefaultPath)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("opening the TPM: %w", err)
	}
	return t, nil
}

// securityName is how the console names a storage security mode.
func securityName(s cpb.NodeStorageSecurity) string {
	name := strings.TrimPrefix(s.String(), "NODE_STORAGE_SECURITY_")
	return strings.ToLower(strings.ReplaceAll(name, "_", " "))
}

// birthTime returns when the file at path was created, or the zero time if
// the filesystem does not say.
func birthTime(path string) time.Time {
	var st unix.Statx_t
	if err := unix.Statx(unix.AT_FDCWD, path, 0, unix.STATX_BTIME, &st); err != nil || st.Mask&unix.STATX_BTIME == 0 {
		return time.Time{}
	}
	return time.Unix(st.Btime.Sec, int64(st.Btime.Nsec))
}
