package launch

import (
	"context"
	"fmt"
	"slices"

	apb "metropolis.dev/metropolis/proto/api"
	"metropolis.dev/osbase/test/qemu"
)

// MeshStatus asks node id for its view of the cluster network mesh.
func (c *Cluster) MeshStatus(ctx context.Context, id string) (*apb.GetMeshStatusResponse, error) {
	conn, err := c.DialNode(ctx, id)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(ctx, qemu.Timeout(callTimeout))
	defer cancel()
	return apb.NewNodeManagementClient(conn).GetMeshStatus(ctx, &apb.GetMeshStatusRequest{})
}

// ProbePeer makes node from send bytes to node to along path, filled with
// marker (see NodeManagement.ProbePeer). Large probes take long under TCG:
// the call is bounded by ctx only.
func (c *Cluster) ProbePeer(ctx context.Context, from, to string, path apb.ProbePeerRequest_Path, bytes uint64, marker string) (*apb.ProbePeerResponse, error) {
	conn, err := c.DialNode(ctx, from)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	return apb.NewNodeManagementClient(conn).ProbePeer(ctx, &apb.ProbePeerRequest{
		NodeId: to, Path: path, Bytes: bytes, Marker: marker,
	})
}

// MeshConnected returns nil if each node of ids has a mesh address, has
// every other one of ids as a peer and no other, and has shaken hands with
// each; otherwise an error saying what is missing.
func (c *Cluster) MeshConnected(ctx context.Context, ids ...string) error {
	for _, id := range ids {
		st, err := c.MeshStatus(ctx, id)
		if err != nil {
			return fmt.Errorf("node %s: %w", id, err)
		}
		if st.MeshAddress == "" {
			return fmt.Errorf("node %s has no mesh address yet", id)
		}
		var peers []string
		for _, p := range st.Peers {
			peers = append(peers, p.NodeId)
			if slices.Contains(ids, p.NodeId) && p.LastHandshake == nil {
				return fmt.Errorf("node %s has not shaken hands with %s yet", id, p.NodeId)
			}
		}
		want := slices.DeleteFunc(slices.Clone(ids), func(other string) bool { return other == id })
		slices.Sort(want)
		slices.Sort(peers)
		if !slices.Equal(peers, want) {
			return fmt.Errorf("node %s has peers %v, want %v", id, peers, want)
		}
	}
	return nil
}
