package core

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	apb "metropolis.dev/metropolis/proto/api"
	cpb "metropolis.dev/metropolis/proto/common"
)

// Table is text in aligned columns, for people to read.
type Table struct {
	Header []string
	Rows   [][]string
}

// Write writes the table with columns separated by at least three spaces,
// starting with the header unless it is nil. Empty cells are shown as "-",
// so that every row has a word per column.
func (t *Table) Write(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
	writeRow := func(cells []string) {
		for i, c := range cells {
			if c == "" {
				c = "-"
			}
			if i > 0 {
				io.WriteString(tw, "\t")
			}
			io.WriteString(tw, c)
		}
		io.WriteString(tw, "\n")
	}
	if t.Header != nil {
		writeRow(t.Header)
	}
	for _, r := range t.Rows {
		writeRow(r)
	}
	return tw.Flush()
}

// NodeTable returns nodes as a table of their most important properties.
func NodeTable(nodes []*apb.Node) *Table {
	t := &Table{Header: []string{"NODE ID", "STATE", "ADDRESS", "HEALTH", "ROLES", "TPM", "VERSION", "HEARTBEAT"}}
	for _, n := range nodes {
		t.Rows = append(t.Rows, []string{
			n.Id,
			NodeState(n.State),
			nodeAddress(n),
			NodeHealth(n.Health),
			strings.Join(RoleNames(n.Roles), ","),
			NodeTPM(n.TpmUsage),
			nodeVersion(n),
			nodeHeartbeat(n),
		})
	}
	return t
}

// NodeState returns state without its enum prefix, for example "UP".
func NodeState(state cpb.NodeState) string {
	return strings.TrimPrefix(state.String(), "NODE_STATE_")
}

// NodeHealth returns health without its enum prefix, for example
// "HEALTHY".
func NodeHealth(health apb.Node_Health) string {
	return strings.TrimPrefix(health.String(), "HEALTH_")
}

// NodeTPM says in a word whether a node uses a TPM: yes, unused (present but
// not used), no (not present) or unknown.
func NodeTPM(usage cpb.NodeTPMUsage) string {
	switch usage {
	case cpb.NodeTPMUsage_NODE_TPM_USAGE_PRESENT_AND_USED:
		return "yes"
	case cpb.NodeTPMUsage_NODE_TPM_USAGE_PRESENT_BUT_UNUSED:
		return "unused"
	case cpb.NodeTPMUsage_NODE_TPM_USAGE_NOT_PRESENT:
		return "no"
	default:
		return "unknown"
	}
}

func nodeAddress(n *apb.Node) string {
	if a := n.Status.GetExternalAddress(); a != "" {
		return a
	}
	return "unknown"
}

func nodeVersion(n *apb.Node) string {
	if v := n.Status.GetVersion().GetRelease(); v != "" {
		return v
	}
	return "unknown"
}

func nodeHeartbeat(n *apb.Node) string {
	if n.TimeSinceHeartbeat == nil {
		return "unknown"
	}
	return n.TimeSinceHeartbeat.AsDuration().Round(time.Second).String()
}

// WriteNodeDetails writes everything known about each node, as a block of
// "key: value" lines per node.
func WriteNodeDetails(w io.Writer, nodes []*apb.Node) error {
	for i, n := range nodes {
		if i > 0 {
			if _, err := io.WriteString(w, "\n"); err != nil {
				return err
			}
		}
		t := &Table{}
		add := func(k, v string) { t.Rows = append(t.Rows, []string{k + ":", v}) }
		add("Node ID", n.Id)
		add("Public key", hex.EncodeToString(n.Pubkey))
		add("State", NodeState(n.State))
		add("Address", nodeAddress(n))
		add("Mesh address", n.Clusternet.GetMeshAddress())
		add("WireGuard key", n.Clusternet.GetWireguardPubkey())
		var prefixes []string
		for _, p := range n.Clusternet.GetPrefixes() {
			prefixes = append(prefixes, p.Cidr)
		}
		add("Mesh prefixes", strings.Join(prefixes, ", "))
		add("Health", NodeHealth(n.Health))
		add("Since heartbeat", nodeHeartbeat(n))
		add("Roles", strings.Join(RoleNames(n.Roles), ", "))
		add("TPM", NodeTPM(n.TpmUsage))
		add("Version", nodeVersion(n))
		if ts := n.Status.GetTimestamp(); ts != nil {
			add("Status reported", ts.AsTime().UTC().Format(time.RFC3339))
		}
		if b := n.Status.GetBootId(); len(b) > 0 {
			add("Boot ID", hex.EncodeToString(b))
		}
		if n.Status.GetRunningCurator() != nil {
			add("Curator port", fmt.Sprint(n.Status.RunningCurator.Port))
		}
		var labels []string
		for _, p := range n.Labels.GetPairs() {
			labels = append(labels, p.Key+"="+p.Value)
		}
		add("Labels", strings.Join(labels, ", "))
		if err := t.Write(w); err != nil {
			return err
		}
	}
	return nil
}

// WriteJSON writes v, which must not contain protobuf messages, as
// indented JSON.
func WriteJSON(w io.Writer, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = w.Write(append(data, '\n'))
	return err
}

// WriteMessagesJSON writes msgs as an indented JSON array, each message with
// its proto field names (as used in CEL filters) and enum value names.
func WriteMessagesJSON[M proto.Message](w io.Writer, msgs []M) error {
	opts := protojson.MarshalOptions{UseProtoNames: true}
	// Not nil, so that no messages are written as [] rather than null.
	raw := make([]json.RawMessage, 0, len(msgs))
	for _, m := range msgs {
		data, err := opts.Marshal(m)
		if err != nil {
			return err
		}
		raw = append(raw, data)
	}
	return WriteJSON(w, raw)
}
