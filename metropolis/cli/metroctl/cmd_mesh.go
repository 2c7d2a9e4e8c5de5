package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/bits"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"metropolis.dev/metropolis/cli/metroctl/core"
	"metropolis.dev/metropolis/node"
	apb "metropolis.dev/metropolis/proto/api"
)

func newNodeMeshCommand(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "mesh node-id",
		Short: "Show a node's view of the cluster network mesh",
		Long: fmt.Sprintf(`Shows the cluster network mesh (WireGuard) as one node sees it, read from the
node itself: its WireGuard public key, its address in the mesh and the UDP
port it listens on, then a line per peer: the peer's node ID, the endpoint
its packets are sent to, the prefixes routed to it, when the last handshake
with it completed, and how much was received from and sent to it since the
node configured it.

A handshake of "never" means that the node configured the peer but never
completed a handshake with it. Nodes shake hands with a new peer at once and
keep the tunnel alive every 25 seconds, so a handshake that stays "never"
for longer than a few seconds means that the peer did not answer: check that
UDP port %d is open in both directions between the two nodes' external
addresses (the ENDPOINT column shows where the node sends to), that the peer
is up, and try 'metroctl node probe'.

--format json prints the node's answer, a
metropolis.proto.api.GetMeshStatusResponse, in the protobuf JSON form (byte
counters are strings there, as for every 64-bit integer).`, node.WireGuardPort),
		Example: `  metroctl node mesh metropolis-1f2e...
  metroctl node mesh metropolis-1f2e... --format json | jq '.peers[] | select(.last_handshake == null) | .node_id'`,
		Args: args(1, 1, "one node ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			return e.withNodeManagement(ctx, args[0], func(n *apb.Node, nm apb.NodeManagementClient) error {
				status, err := nm.GetMeshStatus(ctx, &apb.GetMeshStatusRequest{})
				if err != nil {
					return fmt.Errorf("getting the mesh status of %s: %w", n.Id, err)
				}
				return e.writeOutput(func(w io.Writer) error {
					if e.json() {
						return writeMessageJSON(w, status)
					}
					return writeMeshStatus(w, n.Id, status, time.Now())
				})
			})
		},
	}
}

// writeMeshStatus writes what the node id says about its side of the mesh:
// its own key, address and port, then a table of its peers, with handshake
// ages as of now.
func writeMeshStatus(w io.Writer, id string, status *apb.GetMeshStatusResponse, now time.Time) error {
	meshAddress := status.MeshAddress
	if meshAddress == "" {
		meshAddress = "none assigned yet"
	}
	self := &core.Table{Rows: [][]string{
		{"Node ID:", id},
		{"WireGuard key:", status.WireguardPubkey},
		{"Mesh address:", meshAddress},
		{"Listen port:", strconv.FormatUint(uint64(status.ListenPort), 10)},
	}}
	if err := self.Write(w); err != nil {
		return err
	}
	if len(status.Peers) == 0 {
		_, err := io.WriteString(w, "\nNo peers.\n")
		return err
	}
	peers := &core.Table{Header: []string{"PEER", "ENDPOINT", "ALLOWED PREFIXES", "LAST HANDSHAKE", "RECEIVED", "SENT"}}
	for _, p := range status.Peers {
		peers.Rows = append(peers.Rows, []string{
			p.NodeId,
			p.Endpoint,
			strings.Join(p.AllowedPrefixes, ","),
			handshakeAge(p.LastHandshake, now),
			formatBytes(p.ReceivedBytes),
			formatBytes(p.TransmittedBytes),
		})
	}
	if _, err := io.WriteString(w, "\n"); err != nil {
		return err
	}
	return peers.Write(w)
}

// handshakeAge says how long before now the handshake at t was, or "never"
// if there was none.
func handshakeAge(t *timestamppb.Timestamp, now time.Time) string {
	if t == nil {
		return "never"
	}
	// A node whose clock is ahead of ours reports handshakes in our future.
	age := max(now.Sub(t.AsTime()), 0)
	return age.Round(time.Second).String() + " ago"
}

// formatBytes returns n in the largest binary unit it makes at least one
// of, with one decimal: "512 B", "1.5 KiB", "16 MiB".
func formatBytes(n uint64) string {
	if n < 1024 {
		return fmt.Sprintf("%d B", n)
	}
	// Each unit is 10 bits more than the one before.
	unit := (bits.Len64(n) - 1) / 10
	value := float64(n) / float64(uint64(1)<<(10*unit))
	return strings.TrimSuffix(strconv.FormatFloat(value, 'f', 1, 64), ".0") + " " + "KMGTPE"[unit-1:unit] + "iB"
}

// writeMessageJSON writes a message, indented, with its proto field names
// and enum value names, as WriteMessagesJSON writes lists of them.
func writeMessageJSON(w io.Writer, m proto.Message) error {
	data, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(m)
	if err != nil {
		return err
	}
	return core.WriteJSON(w, json.RawMessage(data))
}

// maxProbeBytes is the most a node sends for one probe.
const maxProbeBytes = 1 << 30

// probeSize is the --bytes of 'node probe': a number of bytes, set from a
// size such as 16MiB.
type probeSize uint64

func (s *probeSize) String() string { return formatSize(uint64(*s)) }
func (s *probeSize) Type() string   { return "size" }

func (s *probeSize) Set(value string) error {
	n, err := parseSize(value)
	if err != nil {
		return err
	}
	if n == 0 {
		return errors.New("a probe sends at least 1 byte")
	}
	if n > maxProbeBytes {
		return fmt.Errorf("a probe sends at most %s", formatSize(maxProbeBytes))
	}
	*s = probeSize(n)
	return nil
}

// sizeUnits are the units parseSize reads, in upper case, by how far they
// shift.
var sizeUnits = map[string]uint{
	"": 0, "B": 0,
	"K": 10, "KB": 10, "KIB": 10,
	"M": 20, "MB": 20, "MIB": 20,
	"G": 30, "GB": 30, "GIB": 30,
}

// parseSize parses a number of bytes written as a whole number, optionally
// followed by a binary unit K, M or G, which may be followed by "iB" or
// "B", in any case: "4096", "512K", "16MiB", "1gb". Units are binary
// whatever their spelling, as elsewhere in Metropolis: 1MB is 1MiB.
func parseSize(s string) (uint64, error) {
	unit := strings.TrimLeft(s, "0123456789")
	number := s[:len(s)-len(unit)]
	if number == "" {
		return 0, errors.New("want a whole number of bytes, optionally with a unit, such as 4096 or 16MiB")
	}
	shift, ok := sizeUnits[strings.ToUpper(unit)]
	if !ok {
		return 0, fmt.Errorf("unknown unit %q: want K, M or G (or KiB, MiB, GiB), or none for bytes", unit)
	}
	n, err := strconv.ParseUint(number, 10, 64)
	if err != nil || n > math.MaxUint64>>shift {
		return 0, fmt.Errorf("%s is too large", s)
	}
	return n << shift, nil
}

// formatSize writes n as parseSize reads it, in the largest unit that
// divides it.
func formatSize(n uint64) string {
	for _, u := range []struct {
		shift uint
		name  string
	}{{30, "GiB"}, {20, "MiB"}, {10, "KiB"}} {
		if n != 0 && n%(1<<u.shift) == 0 {
			return strconv.FormatUint(n>>u.shift, 10) + u.name
		}
	}
	return strconv.FormatUint(n, 10)
}

// probePaths is the --path of 'node probe': which ways to send, one after
// the other.
type probePaths []apb.ProbePeerRequest_Path

// probePathNames are the names of the paths, as --path and the output use
// them.
var probePathNames = map[apb.ProbePeerRequest_Path]string{
	apb.ProbePeerRequest_PATH_MESH:     "mesh",
	apb.ProbePeerRequest_PATH_EXTERNAL: "external",
}

func (p *probePaths) String() string {
	if len(*p) == 2 {
		return "both"
	}
	var names []string
	for _, path := range *p {
		names = append(names, probePathNames[path])
	}
	return strings.Join(names, ",")
}

func (p *probePaths) Type() string { return "path" }

func (p *probePaths) Set(value string) error {
	switch value {
	case "mesh":
		*p = probePaths{apb.ProbePeerRequest_PATH_MESH}
	case "external":
		*p = probePaths{apb.ProbePeerRequest_PATH_EXTERNAL}
	case "both":
		*p = probePaths{apb.ProbePeerRequest_PATH_MESH, apb.ProbePeerRequest_PATH_EXTERNAL}
	default:
		return errors.New("want mesh, external or both")
	}
	return nil
}

// probeReport is the output of 'node probe'.
type probeReport struct {
	From   string        `json:"from"`
	To     string        `json:"to"`
	Probes []probeResult `json:"probes"`
	// MeshToExternal is the mesh's throughput divided by the external
	// path's, if both were probed.
	MeshToExternal *float64 `json:"mesh_to_external_ratio,omitempty"`
}

// probeResult is how one probe went.
type probeResult struct {
	Path            string  `json:"path"`
	Address         string  `json:"address"`
	Bytes           uint64  `json:"bytes"`
	DurationSeconds float64 `json:"duration_seconds"`
	BytesPerSecond  float64 `json:"bytes_per_second"`
}

func newProbeResult(path apb.ProbePeerRequest_Path, res *apb.ProbePeerResponse) (probeResult, error) {
	d := res.Duration.AsDuration()
	if d <= 0 || res.Bytes == 0 {
		return probeResult{}, fmt.Errorf("the node reported %d bytes sent in %v, which says nothing about throughput", res.Bytes, d)
	}
	return probeResult{
		Path:            probePathNames[path],
		Address:         res.Address,
		Bytes:           res.Bytes,
		DurationSeconds: d.Seconds(),
		BytesPerSecond:  float64(res.Bytes) / d.Seconds(),
	}, nil
}

func newNodeProbeCommand(e *env) *cobra.Command {
	size := probeSize(16 << 20)
	paths := probePaths{apb.ProbePeerRequest_PATH_MESH}
	cmd := &cobra.Command{
		Use:   "probe from-node-id to-node-id",
		Short: "Measure the network between two nodes",
		Long: fmt.Sprintf(`Makes the first node send bytes to the second over TCP (to port %d) and
reports the address it sent to, how many bytes the second node confirmed,
how long that took and the throughput, in MB/s (10^6 bytes per second) and
Mbit/s.

It answers two questions. Do the two nodes reach each other through the
cluster network mesh (--path mesh, the default: sent to the second node's
mesh address, through WireGuard)? If not, 'metroctl node mesh' on either
node shows what it knows about the other. And what does the mesh's
encryption cost? --path external sends over the plain network to the second
node's external address; --path both probes the mesh, then the plain network,
and prints the ratio of their throughputs: 1 means the mesh costs nothing,
0.5 that it halves the throughput.

The probe is real traffic: a large --bytes on a busy network competes with
the cluster's own. --format json prints the results for scripts, with
durations in seconds and throughput in bytes per second.`, node.NetworkProbePort),
		Example: `  metroctl node probe metropolis-1f2e... metropolis-2a3b...
  metroctl node probe metropolis-1f2e... metropolis-2a3b... --path both --bytes 256MiB`,
		Args: args(2, 2, "two node IDs, to send from and to"),
		RunE: func(cmd *cobra.Command, args []string) error {
			from, to := args[0], args[1]
			if from == to {
				return usageError{cmd, fmt.Errorf("%s would probe itself: give two different node IDs", from)}
			}
			ctx := cmd.Context()
			s, err := e.connect(ctx)
			if err != nil {
				return err
			}
			defer s.Close()
			// The target is looked up here too, so that an unknown one is
			// reported as for every other command.
			if _, err := core.GetNode(ctx, s.mgmt, to); err != nil {
				return err
			}
			conn, n, err := e.dialNode(ctx, s, from)
			if err != nil {
				return err
			}
			defer conn.Close()
			client := apb.NewNodeManagementClient(conn)
			report := probeReport{From: n.Id, To: to}
			for _, path := range paths {
				e.statusf("Sending %s from %s to %s through the %s path...", formatBytes(uint64(size)), n.Id, to, probePathNames[path])
				res, err := client.ProbePeer(ctx, &apb.ProbePeerRequest{NodeId: to, Path: path, Bytes: uint64(size)})
				if err != nil {
					return fmt.Errorf("probing %s from %s through the %s path: %w", to, n.Id, probePathNames[path], err)
				}
				result, err := newProbeResult(path, res)
				if err != nil {
					return fmt.Errorf("probing %s from %s through the %s path: %w", to, n.Id, probePathNames[path], err)
				}
				report.Probes = append(report.Probes, result)
			}
			if len(report.Probes) == 2 {
				ratio := report.Probes[0].BytesPerSecond / report.Probes[1].BytesPerSecond
				report.MeshToExternal = &ratio
			}
			return e.writeOutput(func(w io.Writer) error {
				if e.json() {
					return core.WriteJSON(w, report)
				}
				return writeProbeReport(w, report)
			})
		},
	}
	cmd.Flags().Var(&paths, "path", "how to reach the second node: mesh (its mesh address, through WireGuard), external (its external address) or both")
	cmd.Flags().Var(&size, "bytes", fmt.Sprintf("how much to send, in bytes or with a binary unit such as 64MiB or 1G (at most %s)", formatSize(maxProbeBytes)))
	return cmd
}

// writeProbeReport writes a block of "key: value" lines per probe, then how
// the paths compare.
func writeProbeReport(w io.Writer, r probeReport) error {
	for i, p := range r.Probes {
		if i > 0 {
			if _, err := io.WriteString(w, "\n"); err != nil {
				return err
			}
		}
		d := time.Duration(p.DurationSeconds * float64(time.Second))
		t := &core.Table{Rows: [][]string{
			{"Path:", p.Path},
			{"Address:", p.Address},
			{"Bytes:", fmt.Sprintf("%d (%s)", p.Bytes, formatBytes(p.Bytes))},
			{"Duration:", roundDuration(d).String()},
			{"Throughput:", fmt.Sprintf("%.1f MB/s (%.1f Mbit/s)", p.BytesPerSecond/1e6, p.BytesPerSecond*8/1e6)},
		}}
		if err := t.Write(w); err != nil {
			return err
		}
	}
	if r.MeshToExternal != nil {
		_, err := fmt.Fprintf(w, "\nMesh/external throughput: %.2f\n", *r.MeshToExternal)
		return err
	}
	return nil
}

// roundDuration rounds d to milliseconds, or to microseconds if it is
// shorter than a second: more digits say nothing about a network.
func roundDuration(d time.Duration) time.Duration {
	switch {
	case d >= time.Second:
		return d.Round(time.Millisecond)
	case d >= time.Millisecond:
		return d.Round(time.Microsecond)
	default:
		return d
	}
}
