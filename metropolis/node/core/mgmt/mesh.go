package mgmt

import (
	"context"
	"encoding/base64"
	"net/netip"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"metropolis.dev/metropolis/node"
	"metropolis.dev/metropolis/node/core/clusternet"
	"metropolis.dev/metropolis/node/core/netprobe"
	"metropolis.dev/metropolis/proto/api"
)

// Mesh is the node's side of the cluster network (clusternet.Service).
type Mesh interface {
	// State is what the mesh has set up.
	State() clusternet.State
	// Device is the kernel's view of the mesh interface.
	Device() (*wgtypes.Device, error)
}

// GetMeshStatus implements NodeManagement.GetMeshStatus: the configured
// peers, with what the kernel knows of each.
func (s *Service) GetMeshStatus(ctx context.Context, _ *api.GetMeshStatusRequest) (*api.GetMeshStatusResponse, error) {
	if s.Mesh == nil {
		return nil, status.Error(codes.Unimplemented, "this node runs no cluster network mesh")
	}
	dev, err := s.Mesh.Device()
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "the mesh is not up on this node yet: %v", err)
	}
	st := s.Mesh.State()
	res := &api.GetMeshStatusResponse{
		WireguardPubkey: base64.StdEncoding.EncodeToString(dev.PublicKey[:]),
		ListenPort:      uint32(dev.ListenPort),
	}
	if st.MeshAddress.IsValid() {
		res.MeshAddress = st.MeshAddress.String()
	}
	kernel := make(map[wgtypes.Key]wgtypes.Peer, len(dev.Peers))
	for _, p := range dev.Peers {
		kernel[p.PublicKey] = p
	}
	for _, p := range st.Peers {
		peer := &api.GetMeshStatusResponse_Peer{
			NodeId:          p.NodeID,
			WireguardPubkey: base64.StdEncoding.EncodeToString(p.PublicKey[:]),
			Endpoint:        p.Endpoint.String(),
		}
		for _, prefix := range p.Prefixes {
			peer.AllowedPrefixes = append(peer.AllowedPrefixes, prefix.String())
		}
		if k, ok := kernel[p.PublicKey]; ok {
			if !k.LastHandshakeTime.IsZero() {
				peer.LastHandshake = timestamppb.New(k.LastHandshakeTime)
			}
			peer.ReceivedBytes = uint64(k.ReceiveBytes)
			peer.TransmittedBytes = uint64(k.TransmitBytes)
		}
		res.Peers = append(res.Peers, peer)
	}
	return res, nil
}

// ProbePeer implements NodeManagement.ProbePeer: it sends the bytes asked
// for to the other node's probe receiver (netprobe), at its mesh or its
// external address.
func (s *Service) ProbePeer(ctx context.Context, req *api.ProbePeerRequest) (*api.ProbePeerResponse, error) {
	if req.NodeId == "" {
		return nil, status.Error(codes.InvalidArgument, "node_id missing")
	}
	if req.Bytes < 1 || req.Bytes > netprobe.MaxBytes {
		return nil, status.Errorf(codes.InvalidArgument, "bytes: %d is not between 1 and %d", req.Bytes, netprobe.MaxBytes)
	}
	if len(req.Marker) > netprobe.MaxMarkerLength {
		return nil, status.Errorf(codes.InvalidArgument, "marker: %d bytes, at most %d are allowed", len(req.Marker), netprobe.MaxMarkerLength)
	}
	if req.Path != api.ProbePeerRequest_PATH_MESH && req.Path != api.ProbePeerRequest_PATH_EXTERNAL {
		return nil, status.Errorf(codes.InvalidArgument, "path: %v is not a path; use PATH_MESH or PATH_EXTERNAL", req.Path)
	}
	if s.Mesh == nil {
		return nil, status.Error(codes.Unimplemented, "this node runs no cluster network mesh")
	}
	var peer *clusternet.Peer
	for _, p := range s.Mesh.State().Peers {
		if p.NodeID == req.NodeId {
			peer = &p
			break
		}
	}
	if peer == nil {
		return nil, status.Errorf(codes.NotFound, "node %s is not a peer of this node: unknown, not UP, or it has not published its mesh key", req.NodeId)
	}
	addr := peer.Endpoint.Addr()
	if req.Path == api.ProbePeerRequest_PATH_MESH {
		if !peer.MeshAddress.IsValid() {
			return nil, status.Errorf(codes.FailedPrecondition, "node %s has no mesh address yet", req.NodeId)
		}
		addr = peer.MeshAddress
	}
	port := s.ProbePort
	if port == 0 {
		port = node.NetworkProbePort
	}
	target := netip.AddrPortFrom(addr, port)
	res, err := netprobe.Send(ctx, target, req.Bytes, []byte(req.Marker))
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "probing node %s at %s: %v", req.NodeId, target, err)
	}
	return &api.ProbePeerResponse{
		Address:  target.String(),
		Bytes:    res.Bytes,
		Duration: durationpb.New(res.Duration),
	}, nil
}
