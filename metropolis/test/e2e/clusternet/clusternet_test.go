// Package clusternet is the end-to-end suite of the cluster network mesh: a
// launched cluster of three nodes, whose WireGuard peers, traffic on the
// wire and reactions to a reboot and a deletion are checked from outside,
// through NodeManagement (GetMeshStatus, ProbePeer) and the switch's packet
// capture.
package clusternet

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip/header"

	"metropolis.dev/metropolis/cli/metroctl/core"
	"metropolis.dev/metropolis/node"
	apb "metropolis.dev/metropolis/proto/api"
	"metropolis.dev/metropolis/test/e2e/e2etest"
	"metropolis.dev/metropolis/test/launch"
	"metropolis.dev/metropolis/test/nanoswitch"
	"metropolis.dev/osbase/test/qemu"
)

// Base timeouts under TCG on 2 cores (see qemu.Timeout).
const (
	suiteTimeout = 30 * time.Minute
	stepTimeout  = 8 * time.Minute
	callTimeout  = 60 * time.Second
	// probeBytes is sent through each path: enough for many full-sized
	// packets, little enough for an emulated machine.
	probeBytes = 256 << 10
)

// probe makes node from send probeBytes to node to along path, with
// marker.
func probe(ctx context.Context, c *e2etest.Cluster, from, to string, path apb.ProbePeerRequest_Path, marker string) (*apb.ProbePeerResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, qemu.Timeout(callTimeout))
	defer cancel()
	return c.ProbePeer(ctx, from, to, path, probeBytes, marker)
}

func newMarker(t *testing.T, what string) string {
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return "metropolis-" + what + "-" + hex.EncodeToString(b)
}

// wireTraffic is what the capture holds of traffic from one address to
// another.
type wireTraffic struct {
	// wireguardBytes is the UDP payload sent to the WireGuard port.
	wireguardBytes int
	// markers counts the frames holding each marker looked for.
	markers map[string]int
}

// inspectCapture reads the switch's capture and sums up the traffic from
// src to dst, and which frames anywhere hold one of markers.
func inspectCapture(t *testing.T, path string, src, dst netip.Addr, markers ...string) wireTraffic {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading the capture: %v", err)
	}
	frames, err := nanoswitch.ReadCapture(data)
	if err != nil {
		t.Fatalf("reading the capture: %v", err)
	}
	res := wireTraffic{markers: make(map[string]int)}
	for _, f := range frames {
		for _, m := range markers {
			if bytes.Contains(f.Frame, []byte(m)) {
				res.markers[m]++
			}
		}
		eth := header.Ethernet(f.Frame)
		if len(f.Frame) < header.EthernetMinimumSize || eth.Type() != header.IPv4ProtocolNumber {
			continue
		}
		ip := header.IPv4(f.Frame[header.EthernetMinimumSize:])
		if !ip.IsValid(len(ip)) || ip.TransportProtocol() != header.UDPProtocolNumber {
			continue
		}
		if ip.SourceAddress().String() != src.String() || ip.DestinationAddress().String() != dst.String() {
			continue
		}
		udp := header.UDP(ip.Payload())
		if len(udp) >= header.UDPMinimumSize && udp.DestinationPort() == node.WireGuardPort {
			res.wireguardBytes += len(udp) - header.UDPMinimumSize
		}
	}
	return res
}

func TestClusternet(t *testing.T) {
	e2etest.Skip(t)
	ctx := e2etest.Context(t, suiteTimeout)
	c := e2etest.Launch(t, ctx, launch.ClusterOptions{NumNodes: 3})
	ids := c.NodeIDs

	t.Run("FullMesh", func(t *testing.T) {
		e2etest.Poll(t, ctx, "every node has shaken hands with every other", stepTimeout, func(ctx context.Context) error {
			return c.MeshConnected(ctx, ids...)
		})
		nodes, err := core.GetNodes(ctx, c.ManagementClient(), "")
		if err != nil {
			t.Fatal(err)
		}
		seen := make(map[string]string)
		for _, n := range nodes {
			addr, err := netip.ParseAddr(n.GetClusternet().GetMeshAddress())
			if err != nil || !node.MeshAddresses.Contains(addr) {
				t.Errorf("node %s has mesh address %q, not within %s", n.Id, n.GetClusternet().GetMeshAddress(), node.MeshAddresses)
				continue
			}
			if other, ok := seen[addr.String()]; ok {
				t.Errorf("nodes %s and %s share mesh address %s", other, n.Id, addr)
			}
			seen[addr.String()] = n.Id
		}
	})

	t.Run("EncryptedOnTheWire", func(t *testing.T) {
		meshMarker, plainMarker := newMarker(t, "mesh"), newMarker(t, "plain")
		res, err := probe(ctx, c, ids[0], ids[1], apb.ProbePeerRequest_PATH_MESH, meshMarker)
		if err != nil {
			t.Fatalf("probe through the mesh: %v", err)
		}
		if res.Bytes != probeBytes || !strings.HasPrefix(res.Address, "10.223.") {
			t.Errorf("probe through the mesh: %d bytes to %s, want %d to a mesh address", res.Bytes, res.Address, probeBytes)
		}
		// The same probe outside the mesh shows that the capture sees
		// the probe's payload when it is not encrypted: the absence of
		// the mesh probe's marker means something.
		if _, err := probe(ctx, c, ids[0], ids[1], apb.ProbePeerRequest_PATH_EXTERNAL, plainMarker); err != nil {
			t.Fatalf("probe over the plain network: %v", err)
		}
		var seen wireTraffic
		e2etest.Poll(t, ctx, "the capture holds the probes", time.Minute, func(ctx context.Context) error {
			seen = inspectCapture(t, c.CapturePath(), c.NodeAddress(0), c.NodeAddress(1), meshMarker, plainMarker)
			if seen.markers[plainMarker] == 0 {
				return errors.New("the plain probe's payload is not in the capture")
			}
			return nil
		})
		if n := seen.markers[meshMarker]; n != 0 {
			t.Errorf("%d captured frames hold the payload sent through the mesh in plaintext", n)
		}
		if seen.wireguardBytes < probeBytes {
			t.Errorf("node 0 sent node 1 %d bytes to UDP port %d, less than the %d bytes sent through the mesh", seen.wireguardBytes, node.WireGuardPort, probeBytes)
		}
		t.Logf("Through the mesh: %d bytes of WireGuard datagrams for %d bytes of payload; no plaintext. Plain probe seen in %d frames.", seen.wireguardBytes, probeBytes, seen.markers[plainMarker])
	})

	t.Run("RebootedNodeRejoins", func(t *testing.T) {
		if err := c.RebootNode(ctx, 1); err != nil {
			t.Fatal(err)
		}
		// Node 1's kernel state is new: any handshake it reports was made
		// after the reboot.
		e2etest.Poll(t, ctx, "the rebooted node is back in the mesh", stepTimeout, func(ctx context.Context) error {
			return c.MeshConnected(ctx, ids...)
		})
		for _, pair := range [][2]int{{0, 1}, {1, 0}, {1, 2}} {
			if _, err := probe(ctx, c, ids[pair[0]], ids[pair[1]], apb.ProbePeerRequest_PATH_MESH, ""); err != nil {
				t.Errorf("probe from node %d to node %d through the mesh: %v", pair[0], pair[1], err)
			}
		}
	})

	t.Run("DeletedNodeRemoved", func(t *testing.T) {
		mgmt := c.ManagementClient()
		callCtx, cancel := context.WithTimeout(ctx, qemu.Timeout(callTimeout))
		defer cancel()
		if _, err := mgmt.DecommissionNode(callCtx, &apb.DecommissionNodeRequest{Node: &apb.DecommissionNodeRequest_Id{Id: ids[2]}}); err != nil {
			t.Fatalf("decommissioning node 2: %v", err)
		}
		if _, err := mgmt.DeleteNode(callCtx, &apb.DeleteNodeRequest{Node: &apb.DeleteNodeRequest_Id{Id: ids[2]}}); err != nil {
			t.Fatalf("deleting node 2: %v", err)
		}
		e2etest.Poll(t, ctx, "the deleted node is no peer of the others", stepTimeout, func(ctx context.Context) error {
			return c.MeshConnected(ctx, ids[0], ids[1])
		})
		if _, err := probe(ctx, c, ids[0], ids[2], apb.ProbePeerRequest_PATH_MESH, ""); err == nil {
			t.Error("node 0 still probes the deleted node through the mesh")
		}
	})
}
