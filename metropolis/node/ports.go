// Package node holds what every part of a Metropolis node agrees on: ports,
// identifiers and validation rules shared by the node's services and by the
// clients that talk to them.
package node

// Ports a node listens on. They are fixed, so that nodes and clients find each
// other knowing only an address.
const (
	// ConsensusPort is the etcd peer port.
	ConsensusPort = 7834
	// CuratorServicePort serves Curator, CuratorLocal, AAA and Management.
	CuratorServicePort = 7835
	// NetworkProbePort receives the test traffic of NodeManagement.ProbePeer
	// from the cluster's other nodes.
	NetworkProbePort = 7836
	// WireGuardPort is the UDP port of the cluster network mesh.
	WireGuardPort = 7838
	// NodeManagementPort serves NodeManagement (logs, updates, power).
	NodeManagementPort = 7839
	// MetricsPort serves the node's metrics over mTLS.
	MetricsPort = 7840
)
