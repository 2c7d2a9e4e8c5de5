package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"metropolis.dev/metropolis/cli/metroctl/core"
	"metropolis.dev/metropolis/node"
	apb "metropolis.dev/metropolis/proto/api"
)

func newNodeCommand(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "node",
		Short: "List, inspect and manage the cluster's nodes",
	}
	add := &cobra.Command{Use: "add", Short: "Add something to nodes"}
	add.AddCommand(newRoleCommand(e, true))
	remove := &cobra.Command{Use: "remove", Short: "Remove something from nodes"}
	remove.AddCommand(newRoleCommand(e, false))
	cmd.AddCommand(
		newNodeListCommand(e),
		newNodeDescribeCommand(e),
		add,
		remove,
		newNodeLabelCommand(e),
		newNodeDecommissionCommand(e),
		newNodeDeleteCommand(e),
		newNodeLogsCommand(e),
		newNodeMeshCommand(e),
		newNodeProbeCommand(e),
		newNodeRebootCommand(e),
		newNodePoweroffCommand(e),
		newNodeParamsCommand(e),
	)
	return cmd
}

// nodes returns the nodes matching --filter, sorted by ID, narrowed to ids
// if any are given. Every ID must be of a matching node.
func (e *env) nodes(ctx context.Context, s *session, ids []string) ([]*apb.Node, error) {
	nodes, err := core.GetNodes(ctx, s.mgmt, e.filter)
	if err != nil {
		return nil, err
	}
	slices.SortFunc(nodes, func(a, b *apb.Node) int { return strings.Compare(a.Id, b.Id) })
	if len(ids) == 0 {
		return nodes, nil
	}
	byID := map[string]*apb.Node{}
	for _, n := range nodes {
		byID[n.Id] = n
	}
	var res []*apb.Node
	var missing []string
	for _, id := range ids {
		n, ok := byID[id]
		if !ok {
			missing = append(missing, id)
			continue
		}
		res = append(res, n)
	}
	if len(missing) > 0 {
		what := "in the cluster"
		if e.filter != "" {
			what = "matching --filter"
		}
		return nil, fmt.Errorf("%w %s: %s", core.ErrNodeNotFound, what, strings.Join(missing, ", "))
	}
	return res, nil
}

func newNodeListCommand(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "list [node-id...]",
		Short: "List nodes in a table",
		Long: `Lists the cluster's nodes, or the given ones, one per line: ID, state,
address, health, roles, whether they use a TPM, OS version and time since
their last heartbeat. --filter selects nodes with a CEL expression over
'node' (a metropolis.proto.api.Node); --format json prints whole node
objects.`,
		Example: `  metroctl node list
  metroctl node list --filter 'node.state == NODE_STATE_UP && has(node.roles.kubernetes_worker)'
  metroctl node list --format json -o nodes.json`,
		RunE: func(cmd *cobra.Command, ids []string) error {
			return e.showNodes(cmd.Context(), ids, func(w io.Writer, nodes []*apb.Node) error {
				return core.NodeTable(nodes).Write(w)
			})
		},
	}
}

func newNodeDescribeCommand(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "describe [node-id...]",
		Short: "Show everything known about nodes",
		Long: `Shows everything the cluster knows about the given nodes, or all nodes (as
selected by --filter): besides what 'node list' shows, their public key,
labels, boot ID, when they last reported their status, and their part of the
cluster network mesh: WireGuard key, mesh address and the prefixes they route
into the mesh.`,
		Example: `  metroctl node describe metropolis-1f2e3d4c5b6a79880123456789abcdef
  metroctl node describe --filter 'node.state == NODE_STATE_NEW'`,
		RunE: func(cmd *cobra.Command, ids []string) error {
			return e.showNodes(cmd.Context(), ids, core.WriteNodeDetails)
		},
	}
}

// showNodes writes the nodes with ids (or all) with writeText, or as JSON.
func (e *env) showNodes(ctx context.Context, ids []string, writeText func(io.Writer, []*apb.Node) error) error {
	s, err := e.connect(ctx)
	if err != nil {
		return err
	}
	defer s.Close()
	nodes, err := e.nodes(ctx, s, ids)
	if err != nil {
		return err
	}
	return e.writeOutput(func(w io.Writer) error {
		if e.json() {
			return core.WriteMessagesJSON(w, nodes)
		}
		return writeText(w, nodes)
	})
}

func newRoleCommand(e *env, enable bool) *cobra.Command {
	verb, short := "add", "Give nodes a role"
	if !enable {
		verb, short = "remove", "Take a role from nodes"
	}
	return &cobra.Command{
		Use:   "role role node-id...",
		Short: short,
		Long: short + `. Roles are KubernetesController (kc), KubernetesWorker (kw) and
ConsensusMember (cm), in any case. A KubernetesController must also be a
ConsensusMember. Every node is updated even if others fail.`,
		Example: fmt.Sprintf(`  metroctl node %[1]s role KubernetesWorker metropolis-1f2e3d4c5b6a79880123456789abcdef
  metroctl node %[1]s role kw metropolis-1f2e... metropolis-2a3b...`, verb),
		Args: args(2, -1, "a role and at least one node ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			role, err := core.ParseRole(args[0])
			if err != nil {
				return err
			}
			s, err := e.connect(cmd.Context())
			if err != nil {
				return err
			}
			defer s.Close()
			failed := 0
			for _, id := range args[1:] {
				if _, err := s.mgmt.UpdateNodeRoles(cmd.Context(), role.UpdateRequest(id, enable)); err != nil {
					e.statusf("Could not update node %s: %v", id, err)
					failed++
					continue
				}
				e.statusf("Updated node %s.", id)
			}
			if failed > 0 {
				return fmt.Errorf("could not update %d of %d nodes", failed, len(args)-1)
			}
			return nil
		},
	}
}

func newNodeLabelCommand(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "label node-id [key=value...] [-key...]",
		Short: "Set or remove labels of a node",
		Long: `Sets labels (key=value) and removes labels (-key) of a node, all at once, and
prints the node's labels afterwards. Keys are up to 63 characters of
[a-zA-Z0-9._-], starting and ending with a letter or digit, optionally
prefixed with a DNS name and a slash; values are the same or empty.

Flags must come before the node ID: everything after it is a label.`,
		Example: `  metroctl node label metropolis-1f2e... example.com/rack=a12 zone=west
  metroctl node label metropolis-1f2e... -zone`,
		Args: args(2, -1, "a node ID and at least one label change"),
		RunE: func(cmd *cobra.Command, args []string) error {
			req, err := labelRequest(args[0], args[1:])
			if err != nil {
				return err
			}
			s, err := e.connect(cmd.Context())
			if err != nil {
				return err
			}
			defer s.Close()
			if _, err := s.mgmt.UpdateNodeLabels(cmd.Context(), req); err != nil {
				return fmt.Errorf("updating labels of %s: %w", args[0], err)
			}
			e.statusf("Updated labels of node %s.", args[0])
			n, err := core.GetNode(cmd.Context(), s.mgmt, args[0])
			if err != nil {
				return err
			}
			return e.writeOutput(func(w io.Writer) error {
				labels := node.LabelsFromProto(n.Labels)
				if e.json() {
					return core.WriteJSON(w, labels)
				}
				for _, p := range labels.Proto().Pairs {
					if _, err := fmt.Fprintf(w, "%s=%s\n", p.Key, p.Value); err != nil {
						return err
					}
				}
				return nil
			})
		},
	}
	// "-key" removes a label, and must not be taken for a flag.
	cmd.Flags().SetInterspersed(false)
	return cmd
}

// labelRequest returns the request that applies changes (key=value or -key)
// to the labels of the node id.
func labelRequest(id string, changes []string) (*apb.UpdateNodeLabelsRequest, error) {
	req := &apb.UpdateNodeLabelsRequest{Node: &apb.UpdateNodeLabelsRequest_Id{Id: id}}
	seen := map[string]bool{}
	var upserts []string
	for _, c := range changes {
		key, isDelete := strings.CutPrefix(c, "-")
		if !isDelete {
			upserts = append(upserts, c)
			key, _, _ = strings.Cut(c, "=")
		} else if err := node.ValidateLabelKey(key); err != nil {
			return nil, err
		} else {
			req.Delete = append(req.Delete, key)
		}
		if seen[key] {
			return nil, fmt.Errorf("label %q is changed twice", key)
		}
		seen[key] = true
	}
	labels, err := core.ParseLabels(upserts)
	if err != nil {
		return nil, err
	}
	for _, p := range labels.Pairs {
		req.Upsert = append(req.Upsert, &apb.UpdateNodeLabelsRequest_Pair{Key: p.Key, Value: p.Value})
	}
	return req, nil
}

func newNodeDecommissionCommand(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "decommission node-id",
		Short: "Take a node out of service before deleting it",
		Long: `Marks an UP node as DECOMMISSIONED: it gets no roles any more and can then be
deleted safely. Remove its roles first ('metroctl node remove role').`,
		Example: `  metroctl node remove role kw metropolis-1f2e...
  metroctl node decommission metropolis-1f2e...
  metroctl node delete metropolis-1f2e...`,
		Args: args(1, 1, "one node ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := e.connect(cmd.Context())
			if err != nil {
				return err
			}
			defer s.Close()
			if _, err := s.mgmt.DecommissionNode(cmd.Context(), &apb.DecommissionNodeRequest{Node: &apb.DecommissionNodeRequest_Id{Id: args[0]}}); err != nil {
				return fmt.Errorf("decommissioning %s: %w", args[0], err)
			}
			e.statusf("Decommissioned node %s. Delete it with 'metroctl node delete %s'.", args[0], args[0])
			return nil
		},
	}
}

func newNodeDeleteCommand(e *env) *cobra.Command {
	var bypassHasRoles, bypassNotDecommissioned bool
	cmd := &cobra.Command{
		Use:   "delete node-id",
		Short: "Remove a node from the cluster",
		Long: `Removes a node from the cluster and revokes its certificate. Nodes that still
have roles, or that are UP rather than DECOMMISSIONED, are only deleted with
the matching --bypass flag: deleting a working node can take away capacity
or consensus quorum.`,
		Example: `  metroctl node delete metropolis-1f2e...
  metroctl node delete --bypass-not-decommissioned metropolis-1f2e...`,
		Args: args(1, 1, "one node ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			req := &apb.DeleteNodeRequest{Node: &apb.DeleteNodeRequest_Id{Id: args[0]}}
			if bypassHasRoles {
				req.SafetyBypassHasRoles = &apb.DeleteNodeRequest_SafetyBypassHasRoles{}
			}
			if bypassNotDecommissioned {
				req.SafetyBypassNotDecommissioned = &apb.DeleteNodeRequest_SafetyBypassNotDecommissioned{}
			}
			s, err := e.connect(cmd.Context())
			if err != nil {
				return err
			}
			defer s.Close()
			if _, err := s.mgmt.DeleteNode(cmd.Context(), req); err != nil {
				return fmt.Errorf("deleting %s: %w", args[0], err)
			}
			e.statusf("Deleted node %s.", args[0])
			return nil
		},
	}
	cmd.Flags().BoolVar(&bypassHasRoles, "bypass-has-roles", false, "delete the node even if it still has roles")
	cmd.Flags().BoolVar(&bypassNotDecommissioned, "bypass-not-decommissioned", false, "delete the node even if it is UP, not DECOMMISSIONED")
	return cmd
}
