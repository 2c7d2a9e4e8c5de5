package localstorage

import (
	"sync"

	"metropolis.dev/metropolis/node/core/localstorage/crypt"
	"metropolis.dev/metropolis/node/core/localstorage/declarative"
)

// Root is the node's directory tree, placed at / on a node.
type Root struct {
	declarative.Directory
	// ESP is the EFI system partition, from which the node boots and on
	// which it keeps what it needs before its data partition is mounted.
	ESP ESPDirectory `dir:"esp"`
	// Data is the data partition, encrypted per NodeStorageSecurity.
	Data DataDirectory `dir:"data"`
	// Ephemeral holds state that lives as long as the boot: sockets,
	// FIFOs, runtime state of the node's services. It is memory.
	Ephemeral EphemeralDirectory `dir:"ephemeral"`
	// Tmp is memory for temporary files.
	Tmp declarative.Directory `dir:"tmp"`
	// Run is memory for the runtime state of programs that expect /run.
	Run declarative.Directory `dir:"run"`

	// mu guards disk and mounted.
	mu   sync.Mutex
	disk *nodeDisk
	// mounted are the mount points Start mounted, in order.
	mounted []string
}

// ESPDirectory is the EFI system partition.
type ESPDirectory struct {
	declarative.Directory
	EFI        ESPEFIDirectory        `dir:"EFI"`
	Metropolis ESPMetropolisDirectory `dir:"metropolis"`
}

// ESPEFIDirectory holds what the firmware boots.
type ESPEFIDirectory struct {
	declarative.Directory
	Boot struct {
		declarative.Directory
		// BootX64 is what the firmware boots from a disk without boot
		// entries: slot A's kernel image in a fresh image.
		BootX64 declarative.File `file:"BOOTX64.EFI"`
	} `dir:"BOOT"`
	Metropolis struct {
		declarative.Directory
		// BootA and BootB are the signed kernel images of the slots.
		BootA declarative.File `file:"boot-a.efi"`
		BootB declarative.File `file:"boot-b.efi"`
	} `dir:"metropolis"`
}

// ESPMetropolisDirectory holds the node's configuration on the ESP.
type ESPMetropolisDirectory struct {
	declarative.Directory
	// SealedConfiguration holds what the node needs to rejoin its cluster
	// and unlock its data, sealed by the TPM if the node uses one.
	SealedConfiguration SealedConfigurationFile `file:"sealed_configuration.pb"`
	// NodeParameters tells a new node which cluster to bootstrap or join
	// (NodeParameters).
	NodeParameters declarative.File `file:"parameters.pb"`
	// ClusterDirectory lists the cluster's nodes, to reach it on boot.
	ClusterDirectory declarative.File `file:"cluster_directory.pb"`
	// NetworkConfiguration is the node's static network configuration.
	NetworkConfiguration declarative.File `file:"network_configuration.pb"`
}

// DataDirectory is the data partition's filesystem.
type DataDirectory struct {
	declarative.Directory
	Containerd declarative.Directory   `dir:"containerd"`
	Etcd       DataEtcdDirectory       `dir:"etcd"`
	Kubernetes DataKubernetesDirectory `dir:"kubernetes"`
	Node       DataNodeDirectory       `dir:"node"`
	// Volumes holds the local persistent volumes of workloads.
	Volumes declarative.Directory `dir:"volumes"`

	root *Root
	// mu guards mapping, which is set while the partition is mounted, and
	// formats, the number of MountNew calls that got to mkfs.
	mu      sync.Mutex
	mapping *crypt.Mapping
	formats int
}

// PKIDirectory holds a certificate, its key and the certificate of the CA
// that signed it, in PEM.
type PKIDirectory struct {
	declarative.Directory
	CACertificate declarative.File `file:"ca.pem"`
	Certificate   declarative.File `file:"cert.pem"`
	Key           declarative.File `file:"cert-key.pem"`
}

// DataEtcdDirectory is the state of the node's consensus member.
type DataEtcdDirectory struct {
	declarative.Directory
	PeerPKI PKIDirectory          `dir:"peer_pki"`
	PeerCRL declarative.File      `file:"peer_crl"`
	Data    declarative.Directory `dir:"data"`
}

// DataNodeDirectory is the node's own state.
type DataNodeDirectory struct {
	declarative.Directory
	// Credentials are the node's certificate in its cluster.
	Credentials PKIDirectory `dir:"credentials"`
	// Roles are the node's roles as last received, to start consensus
	// before the curator is reachable.
	Roles declarative.File `file:"roles.pb"`
}

// DataKubernetesDirectory is the state of the node's Kubernetes
// components.
type DataKubernetesDirectory struct {
	declarative.Directory
	ClusterNetworking struct {
		declarative.Directory
		// PrivateKey is the node's WireGuard key.
		PrivateKey declarative.File `file:"private.key"`
	} `dir:"clusternet"`
	Kubelet struct {
		declarative.Directory
		PKI             PKIDirectory          `dir:"pki"`
		Plugins         declarative.Directory `dir:"plugins"`
		PluginsRegistry declarative.Directory `dir:"plugins_registry"`
	} `dir:"kubelet"`
	CSIProvisioner struct {
		declarative.Directory
		PKI PKIDirectory `dir:"pki"`
	} `dir:"csiprovisioner"`
	NetServices struct {
		declarative.Directory
		PKI PKIDirectory `dir:"pki"`
	} `dir:"netservices"`
}

// EphemeralDirectory is state that lives as long as the boot.
type EphemeralDirectory struct {
	declarative.Directory
	Consensus struct {
		declarative.Directory
		// ClientSocket is where etcd serves its clients on the node.
		ClientSocket declarative.File `file:"client.sock"`
		// ServerLogs is the FIFO etcd logs into.
		ServerLogs declarative.File `file:"server-logs.fifo"`
	} `dir:"consensus"`
	Containerd declarative.Directory `dir:"containerd"`
	// MachineID is the node's machine ID (/etc/machine-id).
	MachineID declarative.File `file:"machine-id"`
}

// New returns the node's tree placed at path, "/" on a node. Nothing is
// mounted or created before Start.
func New(path string) (*Root, error) {
	r := &Root{}
	if err := declarative.Place(r, path); err != nil {
		return nil, err
	}
	r.Data.root = r
	return r, nil
}
