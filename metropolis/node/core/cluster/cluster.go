// Package cluster enrols a node in its cluster on every boot: it decides
// whether the node rejoins the cluster it belongs to, bootstraps a new
// cluster or registers into an existing one, sets up or unlocks the data
// partition accordingly, and hands the result to the Role Server
// (package roleserve), which runs the node as a cluster member from then on.
//
// What a node knows about its cluster across reboots is its sealed
// configuration on the ESP: its half of the data partition key (NUK), the
// key it rejoins with, and the cluster CA. The other half of the data
// partition key (CUK) is held by the cluster, which hands it out only to
// the node's join key (JoinNode), so neither a stolen disk nor a node cut
// off from its cluster can be read. A node without a sealed configuration
// is new and follows its NodeParameters.
//
// The Manager is a one-shot runnable: enrolment happens once per boot, and
// a failure leaves the node waiting for an operator rather than retrying
// steps that already changed the disk.
package cluster

import (
	"context"
	"errors"
	"fmt"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/protobuf/proto"

	"metropolis.dev/metropolis/node/core/localstorage"
	"metropolis.dev/metropolis/node/core/roleserve"
	"metropolis.dev/metropolis/node/core/rpc"
	"metropolis.dev/metropolis/node/core/rpc/resolver"
	apb "metropolis.dev/metropolis/proto/api"
	cpb "metropolis.dev/metropolis/proto/common"
	ppb "metropolis.dev/metropolis/proto/private"
	"metropolis.dev/osbase/supervisor"
	"metropolis.dev/osbase/tpm"
)

// DataPartition is what the Manager needs of the data partition. On a
// node, it is the localstorage.DataDirectory of the node's tree;
// localstorage documents both methods.
type DataPartition interface {
	MountNew(ctx context.Context, security cpb.NodeStorageSecurity, t *tpm.TPM) (cuk []byte, err error)
	MountExisting(ctx context.Context, sealed *ppb.SealedConfiguration, cuk []byte) error
}

// Config configures a Manager.
type Config struct {
	// Storage is the node's directory tree, whose ESP holds the sealed
	// configuration and the cluster directory, and whose data partition
	// holds the node's credentials.
	Storage *localstorage.Root
	// Data is the data partition. Nil means &Storage.Data.
	Data DataPartition
	// TPM is the node's TPM, nil if it has none.
	TPM *tpm.TPM
	// Parameters are the node's NodeParameters, nil if it has none. They
	// are only used on a node's first boot.
	Parameters *apb.NodeParameters
	// RoleServer receives the result of enrolment.
	RoleServer *roleserve.Service
	// CommitInterval is how often a registered node asks whether it was
	// approved. Zero means a second.
	CommitInterval time.Duration
}

// Manager enrols the node in its cluster. Create it with New and run Run
// once as a supervisor runnable.
type Manager struct {
	config Config
	ran    bool
}

// New returns a Manager for config.
func New(config Config) *Manager {
	if config.Data == nil {
		config.Data = &config.Storage.Data
	}
	if config.CommitInterval <= 0 {
		config.CommitInterval = time.Second
	}
	return &Manager{config: config}
}

// Run enrols the node: it rejoins the cluster if the ESP holds a sealed
// configuration, and otherwise bootstraps or registers as NodeParameters
// say. It signals SignalDone once the Role Server has what it needs. It must
// not be restarted: a failed enrolment may have changed the disk, which
// only an operator can sort out.
func (m *Manager) Run(ctx context.Context) error {
	if m.ran {
		return errors.New("cannot restart the cluster manager: a failed enrolment needs an operator")
	}
	m.ran = true
	if err := m.enrol(ctx); err != nil {
		return err
	}
	supervisor.Logger(ctx).Infof("Cluster enrolment done.")
	supervisor.Signal(ctx, supervisor.SignalHealthy)
	supervisor.Signal(ctx, supervisor.SignalDone)
	return nil
}

func (m *Manager) enrol(ctx context.Context) error {
	file := &m.config.Storage.ESP.Metropolis.SealedConfiguration
	if m.config.TPM != nil {
		sc, err := file.Unseal(m.config.TPM)
		switch {
		case err == nil:
			return m.join(ctx, sc, true)
		case errors.Is(err, localstorage.ErrNoSealedConfiguration):
			return m.enrolNew(ctx)
		case !errors.Is(err, tpm.ErrInvalidBlob):
			// Sealed by this node's TPM, but unsealing failed: a changed
			// Secure Boot state or another TPM. Falling back to new
			// enrolment would destroy the data partition.
			return fmt.Errorf("unsealing the node's configuration: %w", err)
		}
		// Not sealed by a TPM at all: the node does not use its TPM.
	}
	sc, err := file.Unseal(nil)
	switch {
	case err == nil:
		return m.join(ctx, sc, false)
	case errors.Is(err, localstorage.ErrNoSealedConfiguration):
		return m.enrolNew(ctx)
	default:
		return fmt.Errorf("reading the node's configuration: %w", err)
	}
}

// enrolNew enrols a node on its first boot, as its parameters say.
func (m *Manager) enrolNew(ctx context.Context) error {
	p := m.config.Parameters
	switch {
	case p.GetClusterBootstrap() != nil:
		return m.bootstrap(ctx, p.GetClusterBootstrap())
	case p.GetClusterRegister() != nil:
		return m.register(ctx, p.GetClusterRegister())
	}
	return errors.New("this node has never been enrolled (no sealed configuration) and its node parameters say neither to bootstrap nor to register")
}

// writeDirectory keeps the cluster directory on the ESP, to find the
// cluster on the next boot.
func (m *Manager) writeDirectory(d *cpb.ClusterDirectory) error {
	b, err := proto.Marshal(d)
	if err != nil {
		return fmt.Errorf("encoding cluster directory: %w", err)
	}
	if err := m.config.Storage.ESP.Metropolis.ClusterDirectory.Write(b, 0o644); err != nil {
		return fmt.Errorf("writing cluster directory: %w", err)
	}
	return nil
}

func (m *Manager) readDirectory() (*cpb.ClusterDirectory, error) {
	file := &m.config.Storage.ESP.Metropolis.ClusterDirectory
	b, err := file.Read()
	if err != nil {
		return nil, fmt.Errorf("reading cluster directory: %w", err)
	}
	var d cpb.ClusterDirectory
	if err := proto.Unmarshal(b, &d); err != nil {
		return nil, fmt.Errorf("cluster directory %s is damaged: %w", file.FullPath(), err)
	}
	return &d, nil
}

// sealingTPM is the TPM to seal the configuration with for usage.
func (m *Manager) sealingTPM(usage cpb.NodeTPMUsage) *tpm.TPM {
	if usage == cpb.NodeTPMUsage_NODE_TPM_USAGE_PRESENT_AND_USED {
		return m.config.TPM
	}
	return nil
}

// reseal adds to the sealed configuration that MountNew wrote.
func (m *Manager) reseal(t *tpm.TPM, change func(*ppb.SealedConfiguration)) error {
	file := &m.config.Storage.ESP.Metropolis.SealedConfiguration
	sc, err := file.Unseal(t)
	if err != nil {
		return fmt.Errorf("reading back the sealed configuration: %w", err)
	}
	change(sc)
	return file.Seal(sc, t)
}

// dialCluster connects to the curator leader through the nodes of d, with
// creds. The connection follows only those nodes, as it serves only
// enrolment.
func dialCluster(ctx context.Context, d *cpb.ClusterDirectory, creds credentials.TransportCredentials) (*grpc.ClientConn, *resolver.Resolver, error) {
	r := resolver.New(ctx, resolver.WithoutCuratorUpdater(), resolver.WithLogger(supervisor.Slog(ctx)))
	for _, n := range d.GetNodes() {
		for _, a := range n.Addresses {
			r.AddEndpoint(resolver.NodeAtAddressWithDefaultPort(a.Host))
		}
	}
	conn, err := grpc.NewClient(resolver.Scheme+":///control",
		grpc.WithTransportCredentials(creds),
		grpc.WithResolvers(r),
		rpc.ClientKeepalive(),
		grpc.WithDefaultCallOptions(grpc.WaitForReady(true)),
	)
	if err != nil {
		r.Close()
		return nil, nil, fmt.Errorf("connecting to the cluster: %w", err)
	}
	return conn, r, nil
}
