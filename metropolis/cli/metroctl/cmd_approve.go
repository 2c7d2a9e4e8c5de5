package main

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"metropolis.dev/metropolis/cli/metroctl/core"
	apb "metropolis.dev/metropolis/proto/api"
	cpb "metropolis.dev/metropolis/proto/common"
)

func newApproveCommand(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "approve [node-id...]",
		Short: "Let registered nodes join the cluster",
		Long: `Without arguments, lists the nodes that registered and wait for approval
(state NEW). With node IDs, approves them: they then finish joining the
cluster by themselves.

A node prints its ID on its console when it registers; approve only nodes
whose ID you have checked there.`,
		Example: `  metroctl approve
  metroctl approve metropolis-1f2e3d4c5b6a79880123456789abcdef`,
		RunE: func(cmd *cobra.Command, ids []string) error {
			ctx := cmd.Context()
			s, err := e.connect(ctx)
			if err != nil {
				return err
			}
			defer s.Close()
			if len(ids) == 0 {
				pending, err := core.GetNodes(ctx, s.mgmt, "node.state == NODE_STATE_NEW")
				if err != nil {
					return err
				}
				return e.writeOutput(func(w io.Writer) error {
					var pendingIDs []string
					for _, n := range pending {
						pendingIDs = append(pendingIDs, n.Id)
					}
					if e.json() {
						return core.WriteJSON(w, append([]string{}, pendingIDs...))
					}
					if len(pendingIDs) == 0 {
						_, err := fmt.Fprintln(w, "There are no nodes pending approval at this time.")
						return err
					}
					for _, id := range pendingIDs {
						if _, err := fmt.Fprintln(w, id); err != nil {
							return err
						}
					}
					return nil
				})
			}
			for _, id := range ids {
				n, err := core.GetNode(ctx, s.mgmt, id)
				if err != nil {
					return err
				}
				if n.State != cpb.NodeState_NODE_STATE_NEW {
					e.statusf("Node %s is %s, approved already.", id, core.NodeState(n.State))
					continue
				}
				if _, err := s.mgmt.ApproveNode(ctx, &apb.ApproveNodeRequest{Pubkey: n.Pubkey}); err != nil {
					return fmt.Errorf("approving %s: %w", id, err)
				}
				e.statusf("Approved node %s.", id)
			}
			return nil
		},
	}
}
