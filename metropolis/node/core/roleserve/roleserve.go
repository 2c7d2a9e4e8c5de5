package roleserve

import (
	"context"
	"crypto/ed25519"
	"time"

	"google.golang.org/grpc"

	"metropolis.dev/metropolis/node/core/clusternet"
	"metropolis.dev/metropolis/node/core/curator"
	"metropolis.dev/metropolis/node/core/identity"
	"metropolis.dev/metropolis/node/core/localstorage"
	"metropolis.dev/metropolis/node/core/network"
	cpb "metropolis.dev/metropolis/proto/common"
	"metropolis.dev/osbase/event"
	"metropolis.dev/osbase/event/memory"
	"metropolis.dev/osbase/supervisor"
)

// DefaultBootIDPath is where the kernel publishes the ID of the current
// boot.
const DefaultBootIDPath = "/proc/sys/kernel/random/boot_id"

// Config configures the Role Server.
type Config struct {
	// Storage is the node's directory tree. The Role Server keeps the
	// node's credentials and roles on its data partition, which must be
	// mounted before enrolment data is provided, the consensus member's
	// data and socket in it, and the cluster directory on the ESP.
	Storage *localstorage.Root
	// Network is the node's network status; its external address is what
	// the node reports to the cluster and what its consensus member
	// listens on.
	Network event.Watchable[*network.Status]
	// ControlPlaneHost, if set, is the only address the local curator and
	// the node management service listen on, and where the node itself
	// reaches its curator. Empty means that they listen on every address
	// and the node reaches its curator at 127.0.0.1. Tests set it to run
	// several nodes in one network namespace.
	ControlPlaneHost string
	// NodeManagement, if set, is served on node.NodeManagementPort once the
	// node has credentials in its cluster.
	NodeManagement interface{ Register(grpc.ServiceRegistrar) }
	// Clusternet, if set, is run once the node is a member of its cluster:
	// the WireGuard mesh between the nodes.
	Clusternet *clusternet.Service
	// NodeNames, if set, is given the addresses of the cluster's nodes by
	// node ID as they change, for the node's DNS resolver to answer.
	NodeNames NodeNames
	// BootIDPath is the file holding the current boot's ID. Empty means
	// DefaultBootIDPath.
	BootIDPath string
	// HeartbeatInterval is how often the node sends heartbeats. Zero means
	// curator.HeartbeatInterval, which the curator's health judgement
	// assumes; only tests change it.
	HeartbeatInterval time.Duration
}

// Service is the Role Server. Create it with New and run Run as a
// supervisor runnable.
type Service struct {
	config Config

	// LocalRoles are the node's roles as last known. Nil roles are never
	// set; a node without roles has an empty NodeRoles.
	LocalRoles memory.Value[*cpb.NodeRoles]
	// CuratorConnection is set once the node is a member of the cluster.
	CuratorConnection memory.Value[*CuratorConnection]

	// bootstrapData is set if this node creates the cluster.
	bootstrapData memory.Value[*BootstrapData]
	// membership is set once the node has credentials in the cluster.
	membership memory.Value[*membership]
	// localControlPlane says whether consensus and curator run here.
	localControlPlane memory.Value[*localControlPlane]
}

// CuratorConnection is the node's connection to the curator leader.
type CuratorConnection struct {
	// Credentials of the node in the cluster.
	Credentials *identity.NodeCredentials
	// Conn reaches the curator leader, wherever it runs, authenticated
	// with Credentials. It stays open as long as the Role Server runs.
	Conn *grpc.ClientConn
}

// BootstrapData is what the cluster manager hands to the Role Server when
// this node creates a new cluster. The control plane worker completes the
// bootstrap: it starts a new etcd cluster, writes the cluster's initial
// state (curator.BootstrapNodeFinish), saves the node's credentials and
// starts the curator.
type BootstrapData struct {
	// NodeKey is the node's private key.
	NodeKey ed25519.PrivateKey
	// JoinKey is the public key the node rejoins with after reboots.
	JoinKey ed25519.PublicKey
	// ClusterUnlockKey is the cluster's half of the data partition key,
	// nil for insecure storage.
	ClusterUnlockKey []byte
	// StorageSecurity of the node's data partition.
	StorageSecurity cpb.NodeStorageSecurity
	// TPMUsage of the node.
	TPMUsage cpb.NodeTPMUsage
	// OwnerPublicKey is the key of the cluster's initial owner.
	OwnerPublicKey ed25519.PublicKey
	// Configuration of the new cluster.
	Configuration *cpb.ClusterConfiguration
	// Labels of the node.
	Labels *cpb.NodeLabels
}

// membership is a node's standing in its cluster: its credentials, and
// where to look for curators.
type membership struct {
	credentials *identity.NodeCredentials
	// curatorHosts are addresses of nodes that may run curators.
	curatorHosts []string
}

// localControlPlane is the state of the control plane on this node.
type localControlPlane struct {
	// running is set while the node runs consensus and a curator.
	running bool
}

// New returns a Role Server for config. Nothing happens until Run.
func New(config Config) *Service {
	if config.BootIDPath == "" {
		config.BootIDPath = DefaultBootIDPath
	}
	if config.HeartbeatInterval <= 0 {
		config.HeartbeatInterval = curator.HeartbeatInterval
	}
	return &Service{config: config}
}

// ProvideBootstrapData makes this node create a new cluster. The cluster
// manager calls it once, after mounting the new data partition.
func (s *Service) ProvideBootstrapData(d *BootstrapData) {
	s.bootstrapData.Set(d)
}

// ProvideRegisterData tells the Role Server that the node has just
// registered into a cluster and committed, with credentials, and may reach
// the cluster's curators through the nodes of directory.
func (s *Service) ProvideRegisterData(credentials *identity.NodeCredentials, directory *cpb.ClusterDirectory) {
	s.provideMembership(credentials, directory)
}

// ProvideJoinData tells the Role Server that the node has rejoined its
// cluster after a reboot, with the credentials saved on its data partition,
// and may reach the cluster's curators through the nodes of directory.
func (s *Service) ProvideJoinData(credentials *identity.NodeCredentials, directory *cpb.ClusterDirectory) {
	s.provideMembership(credentials, directory)
}

func (s *Service) provideMembership(credentials *identity.NodeCredentials, directory *cpb.ClusterDirectory) {
	m := &membership{credentials: credentials}
	for _, n := range directory.GetNodes() {
		for _, a := range n.Addresses {
			m.curatorHosts = append(m.curatorHosts, a.Host)
		}
	}
	s.membership.Set(m)
}

// Run is the Role Server's supervisor runnable: it starts the workers and
// runs until ctx is done.
func (s *Service) Run(ctx context.Context) error {
	workers := []struct {
		name string
		run  supervisor.Runnable
	}{
		{"connection", s.runConnection},
		{"controlplane", s.runControlPlane},
		{"statuspush", s.runStatusPush},
		{"heartbeat", s.runHeartbeat},
		{"rolefetch", s.runRoleFetch},
		{"nodemgmt", s.runNodeManagement},
		{"directory", s.runDirectory},
		{"clusternet", s.runClusternet},
	}
	for _, w := range workers {
		if err := supervisor.Run(ctx, w.name, w.run); err != nil {
			return err
		}
	}
	supervisor.Signal(ctx, supervisor.SignalHealthy)
	<-ctx.Done()
	return ctx.Err()
}

// curatorConnection waits for the node's connection to the curator.
func (s *Service) curatorConnection(ctx context.Context) (*CuratorConnection, error) {
	w := s.CuratorConnection.Watch()
	defer w.Close()
	return w.Get(ctx)
}

// localCuratorHost is where the node reaches its own curator.
func (s *Service) localCuratorHost() string {
	if s.config.ControlPlaneHost != "" {
		return s.config.ControlPlaneHost
	}
	return "127.0.0.1"
}
