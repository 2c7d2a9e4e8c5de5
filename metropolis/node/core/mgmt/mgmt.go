// Package mgmt implements NodeManagement, the API every node serves for
// operators to inspect and manage that one node.
//
// It serves Reboot, which restarts or powers off the node, GetMeshStatus
// and ProbePeer, which show and test the node's side of the cluster network
// mesh, and Logs, which gives access to the node's log tree (see
// osbase/logtree): the entries buffered so far (the backlog) and, if asked,
// new ones as they are logged. The backlog goes out in chunks of at most
// 2000 entries, so that no single message grows without bound, and is
// always sent in full before the first streamed entry, so a client can
// print entries in order as they arrive. Requests are checked before any
// reading starts; everything malformed is refused with InvalidArgument and
// a message naming the field.
//
// Service is a plain gRPC service implementation: who may call it is
// decided by the server's security options (metropolis/node/core/rpc),
// with which the caller registers it.
package mgmt

import (
	"google.golang.org/grpc"

	"metropolis.dev/metropolis/proto/api"
	"metropolis.dev/osbase/logtree"
)

// Service implements api.NodeManagementServer.
type Service struct {
	// LogTree is the node's log tree, which Logs reads.
	LogTree *logtree.LogTree
	// Power, if set, restarts or turns off the node for Reboot, which is
	// Unimplemented without it.
	Power Power
	// Mesh, if set, is the node's side of the cluster network, which
	// GetMeshStatus describes and ProbePeer sends through; both are
	// Unimplemented without it.
	Mesh Mesh
	// ProbePort is where other nodes receive ProbePeer's traffic; zero
	// means node.NetworkProbePort.
	ProbePort uint16

	api.UnimplementedNodeManagementServer
}

// Register registers s with a gRPC server.
func (s *Service) Register(r grpc.ServiceRegistrar) {
	api.RegisterNodeManagementServer(r, s)
}
