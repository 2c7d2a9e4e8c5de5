package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"metropolis.dev/metropolis/node/core/localstorage"
	"metropolis.dev/metropolis/node/core/localstorage/crypt"
	"metropolis.dev/metropolis/node/core/nodeparams"
	"metropolis.dev/metropolis/proto/api"
	cpb "metropolis.dev/metropolis/proto/common"
	ppb "metropolis.dev/metropolis/proto/private"
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

// storage is the runnable that mounts the data partition: a new one on
// the node's first boot, as its parameters ask, and the existing one,
// unlocked with the node's sealed configuration, on every boot after.
type storage struct {
	root *localstorage.Root
	// params, or why there are none, for the first boot.
	params    *nodeparams.Loaded
	paramsErr error
	status    *memory.Value[*storageStatus]
}

func (s *storage) run(ctx context.Context) error {
	t, err := openTPM()
	if err != nil {
		return err
	}
	if t != nil {
		defer t.Close()
	}
	sealed, err := s.unseal(t)
	switch {
	case errors.Is(err, localstorage.ErrNoSealedConfiguration):
		return s.mountNew(ctx, t)
	case err != nil:
		return s.stuck(ctx, explainUnsealError(err))
	}
	return s.mountExisting(ctx, sealed)
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

// unseal reads the sealed configuration: sealed by t if the node has a
// TPM, unless the node did not use it when it was set up.
func (s *storage) unseal(t *tpm.TPM) (*ppb.SealedConfiguration, error) {
	file := &s.root.ESP.Metropolis.SealedConfiguration
	sealed, err := file.Unseal(t)
	if t != nil && errors.Is(err, tpm.ErrInvalidBlob) {
		if plain, perr := file.Unseal(nil); perr == nil {
			return plain, nil
		}
	}
	return sealed, err
}

// explainUnsealError says why the node cannot unseal its configuration,
// and what that means.
func explainUnsealError(err error) string {
	const untouched = "; the data partition was left untouched"
	switch {
	case errors.Is(err, tpm.ErrWrongTPM):
		return "the node's sealed configuration was sealed by a different TPM: this disk was set up in another machine, or this machine's TPM was cleared (" + err.Error() + ")" + untouched
	case errors.Is(err, tpm.ErrPolicyMismatch):
		return "the node's Secure Boot state changed since its configuration was sealed (" + err.Error() + ")" + untouched
	}
	return "cannot read the node's sealed configuration: " + err.Error() + untouched
}

// mountNew makes and mounts a new data partition on the node's first boot.
func (s *storage) mountNew(ctx context.Context, t *tpm.TPM) error {
	if s.params == nil {
		reason := nodeparams.ErrAbsent
		if s.paramsErr != nil {
			reason = s.paramsErr
		}
		return s.stuck(ctx, fmt.Sprintf("this is the node's first boot (its ESP holds no sealed configuration), and it has no usable parameters to set up its data partition with: %v", reason))
	}
	security, tpmMode := storagePolicy(s.params.Parameters)
	switch {
	case tpmMode == cpb.ClusterConfiguration_TPM_MODE_REQUIRED && t == nil:
		return s.stuck(ctx, "the cluster configuration requires a TPM, and this node has none")
	case tpmMode == cpb.ClusterConfiguration_TPM_MODE_DISABLED:
		t = nil
	}
	sealing := "sealing its keys with the TPM"
	if t == nil {
		sealing = "without a TPM to seal its keys"
	}
	supervisor.Logger(ctx).Infof("First boot: setting up a new data partition (%s), %s", securityName(security), sealing)
	s.status.Set(&storageStatus{Security: security, Problem: "being set up"})

	cuk, err := s.root.Data.MountNew(ctx, security, t)
	if err != nil {
		return fmt.Errorf("setting up the data partition: %w", err)
	}
	if cuk != nil {
		if err := s.root.ESP.Metropolis.ClusterUnlockKeyPlaceholder.Save(cuk); err != nil {
			return err
		}
	}
	return s.mounted(ctx, security, true)
}

// mountExisting unlocks and mounts the data partition made on an earlier
// boot.
func (s *storage) mountExisting(ctx context.Context, sealed *ppb.SealedConfiguration) error {
	var cuk []byte
	if sealed.StorageSecurity != cpb.NodeStorageSecurity_NODE_STORAGE_SECURITY_INSECURE {
		var err error
		cuk, err = s.root.ESP.Metropolis.ClusterUnlockKeyPlaceholder.Load()
		if err != nil {
			return s.stuck(ctx, fmt.Sprintf("cannot read the cluster unlock key: %v", err))
		}
	}
	err := s.root.Data.MountExisting(ctx, sealed, cuk)
	if errors.Is(err, crypt.ErrWrongKey) {
		return s.stuck(ctx, fmt.Sprintf("the data partition does not open with the node's keys: %v", err))
	}
	if err != nil {
		return fmt.Errorf("mounting the data partition: %w", err)
	}
	return s.mounted(ctx, sealed.StorageSecurity, false)
}

// mounted reports the mounted partition and keeps it mounted until ctx is
// canceled.
func (s *storage) mounted(ctx context.Context, security cpb.NodeStorageSecurity, isNew bool) error {
	created := birthTime(s.root.Data.FullPath())
	when := "at an unknown time"
	if !created.IsZero() {
		when = created.UTC().Format(time.RFC3339Nano)
	}
	origin := "set up on an earlier boot"
	if isNew {
		origin = "set up on this boot"
	}
	supervisor.Logger(ctx).Infof("Data partition ready: %s, %s, filesystem created %s", securityName(security), origin, when)
	s.status.Set(&storageStatus{Mounted: true, Security: security, New: isNew, Created: created})
	supervisor.Signal(ctx, supervisor.SignalHealthy)

	<-ctx.Done()
	if err := s.root.Data.Unmount(); err != nil {
		supervisor.Logger(ctx).Errorf("Unmounting the data partition: %v", err)
	}
	return ctx.Err()
}

// stuck reports a problem that no retry on this boot can solve, and waits
// for the node to stop.
func (s *storage) stuck(ctx context.Context, problem string) error {
	supervisor.Logger(ctx).Errorf("The data partition cannot be mounted: %s", problem)
	s.status.Set(&storageStatus{Problem: problem})
	<-ctx.Done()
	return ctx.Err()
}

// storagePolicy returns how the node protects its new data partition and
// whether it uses its TPM, as the cluster's configuration asks: that from
// the parameters when the node bootstraps the cluster. A node registering
// into a cluster uses authenticated encryption and its TPM, if it has one.
func storagePolicy(p *api.NodeParameters) (cpb.NodeStorageSecurity, cpb.ClusterConfiguration_TPMMode) {
	cfg := p.GetClusterBootstrap().GetInitialClusterConfiguration()
	security := cpb.NodeStorageSecurity_NODE_STORAGE_SECURITY_AUTHENTICATED_ENCRYPTED
	switch cfg.GetStorageSecurityPolicy() {
	case cpb.ClusterConfiguration_STORAGE_SECURITY_POLICY_NEEDS_INSECURE:
		security = cpb.NodeStorageSecurity_NODE_STORAGE_SECURITY_INSECURE
	case cpb.ClusterConfiguration_STORAGE_SECURITY_POLICY_NEEDS_ENCRYPTION:
		security = cpb.NodeStorageSecurity_NODE_STORAGE_SECURITY_ENCRYPTED
	}
	tpmMode := cfg.GetTpmMode()
	if tpmMode == cpb.ClusterConfiguration_TPM_MODE_INVALID {
		tpmMode = cpb.ClusterConfiguration_TPM_MODE_BEST_EFFORT
	}
	return security, tpmMode
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
