// Package hacold is the end-to-end suite of a cold start: a cluster of three
// nodes, all of them consensus members, is powered off as a whole and
// started again, and must come back from what its nodes persisted (their
// roles, the etcd data) with nobody's help. It then shrinks its control
// plane to the other two nodes, deletes the bootstrap node, and cold-starts
// again without it, so that nothing in the cluster still depends on the node
// that created it.
//
// The nodes' storage is not encrypted, as an encrypted node can only rejoin
// while another consensus member's curator is up to give it the cluster's
// half of its data key, which no node has after a power-off of the whole
// cluster. The cluster's TPM mode is "disabled", so that the nodes' sealed
// configuration is not what brings them back.
package hacold

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"metropolis.dev/metropolis/cli/metroctl/core"
	ipb "metropolis.dev/metropolis/node/core/curator/proto/api"
	apb "metropolis.dev/metropolis/proto/api"
	cpb "metropolis.dev/metropolis/proto/common"
	"metropolis.dev/metropolis/test/e2e/e2etest"
	"metropolis.dev/metropolis/test/launch"
	"metropolis.dev/osbase/test/qemu"
)

// Base timeouts under TCG on 2 cores (see qemu.Timeout).
const (
	// suiteTimeout bounds the whole suite, launch included.
	suiteTimeout = 30 * time.Minute
	// stepTimeout bounds one step of a test: the cluster coming back from
	// a cold start, a consensus change.
	stepTimeout = 8 * time.Minute
	// callTimeout bounds one call to the cluster or one metroctl run, so
	// that a call to a curator that is not up yet does not use up a whole
	// step.
	callTimeout = 30 * time.Second
)

// run runs metroctl with args, bounded by callTimeout.
func run(ctx context.Context, c *e2etest.Cluster, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, qemu.Timeout(callTimeout))
	defer cancel()
	return c.Run(ctx, args...)
}

// runUntilDone runs metroctl with args until it succeeds, as long as it
// fails with Unavailable: a change to the control plane can take away the
// curator leader that was making it, whose answer is then lost while the
// change itself is completed (from etcd's membership) and simply confirmed
// by the next leader. Any other failure is final.
func runUntilDone(t *testing.T, ctx context.Context, c *e2etest.Cluster, args ...string) {
	t.Helper()
	what := "metroctl " + strings.Join(args, " ") + " succeeds"
	e2etest.Poll(t, ctx, what, stepTimeout, func(ctx context.Context) error {
		_, err := run(ctx, c, args...)
		if err != nil && !strings.Contains(err.Error(), "code = Unavailable") {
			t.Fatal(err)
		}
		return err
	})
}

// describedIDs returns the IDs of the nodes metroctl describes.
func describedIDs(ctx context.Context, c *e2etest.Cluster) ([]string, error) {
	out, err := run(ctx, c, "node", "describe", "--format", "json")
	if err != nil {
		return nil, err
	}
	var nodes []struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal([]byte(out), &nodes); err != nil {
		return nil, fmt.Errorf("metroctl node describe: %w\n%s", err, out)
	}
	var ids []string
	for _, n := range nodes {
		ids = append(ids, n.ID)
	}
	return ids, nil
}

// restarted returns nil if every node with one of ids sent the curator a
// heartbeat after since and is UP and HEALTHY.
func restarted(ctx context.Context, c *e2etest.Cluster, since time.Time, ids ...string) error {
	ctx, cancel := context.WithTimeout(ctx, qemu.Timeout(callTimeout))
	defer cancel()
	nodes, err := core.GetNodes(ctx, c.ManagementClient(), "")
	if err != nil {
		return err
	}
	byID := make(map[string]*apb.Node)
	for _, n := range nodes {
		byID[n.Id] = n
	}
	var problems []string
	for _, id := range ids {
		n, ok := byID[id]
		switch {
		case !ok:
			problems = append(problems, id+" is not listed")
		case n.TimeSinceHeartbeat == nil || !time.Now().Add(-n.TimeSinceHeartbeat.AsDuration()).After(since):
			problems = append(problems, id+" has sent no heartbeat since the restart")
		case n.State != cpb.NodeState_NODE_STATE_UP || n.Health != apb.Node_HEALTH_HEALTHY:
			problems = append(problems, fmt.Sprintf("%s is %s, %s", id, n.State, n.Health))
		}
	}
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "; "))
	}
	return nil
}

// coldStart powers off the nodes with indices is, all at once as a power
// cut would, starts them again and waits until they are back.
func coldStart(t *testing.T, ctx context.Context, c *e2etest.Cluster, is ...int) {
	t.Helper()
	var ids []string
	for _, i := range is {
		if err := c.ShutdownNode(ctx, i); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, c.NodeIDs[i])
	}
	since := time.Now()
	for _, i := range is {
		if err := c.StartNode(ctx, i); err != nil {
			t.Fatal(err)
		}
	}
	e2etest.Poll(t, ctx, fmt.Sprintf("nodes %v heartbeat after the cold start and are HEALTHY", is), stepTimeout, func(ctx context.Context) error {
		return restarted(ctx, c, since, ids...)
	})
}

func TestColdStart(t *testing.T) {
	e2etest.Skip(t)
	ctx := e2etest.Context(t, suiteTimeout)
	c := e2etest.Launch(t, ctx, launch.ClusterOptions{
		NumNodes:        3,
		TPMMode:         "disabled",
		StorageSecurity: "needs-insecure",
	})
	ids := c.NodeIDs
	first, rest := ids[0], ids[1:]

	steps := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"GrowConsensus", func(t *testing.T) {
			c.GrowConsensus(t, ctx, stepTimeout)
			if err := c.WaitHealthy(ctx); err != nil {
				t.Fatal(err)
			}
		}},
		{"ColdStart", func(t *testing.T) {
			coldStart(t, ctx, c, 0, 1, 2)
			members, err := c.ConsensusMembers(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, id := range ids {
				if members[id] != ipb.GetConsensusStatusResponse_EtcdMember_STATUS_FULL {
					t.Errorf("after the cold start %s is a consensus member with status %v, want FULL (members: %v)", id, members[id], members)
				}
			}
		}},
		{"ShrinkConsensus", func(t *testing.T) {
			// The bootstrap node is also the first Kubernetes controller,
			// which needs it to be a consensus member.
			for _, role := range []string{"KubernetesController", "ConsensusMember"} {
				runUntilDone(t, ctx, c, "node", "remove", "role", role, first)
			}
			e2etest.Poll(t, ctx, first+" is no consensus member", stepTimeout, func(ctx context.Context) error {
				members, err := c.ConsensusMembers(ctx)
				if err != nil {
					return err
				}
				if _, ok := members[first]; ok || len(members) != len(rest) {
					return fmt.Errorf("members are %v", members)
				}
				return nil
			})
		}},
		{"DeleteBootstrapNode", func(t *testing.T) {
			_, err := run(ctx, c, "node", "delete", first)
			switch {
			case err == nil:
				t.Fatalf("metroctl deleted %s, which is UP, without --bypass-not-decommissioned", first)
			case !strings.Contains(err.Error(), "decommission"):
				t.Fatalf("metroctl refused to delete %s, but not because it is UP: %v", first, err)
			}
			if _, err := run(ctx, c, "node", "decommission", first); err != nil {
				t.Fatal(err)
			}
			if _, err := run(ctx, c, "node", "delete", first); err != nil {
				t.Fatal(err)
			}
			described, err := describedIDs(ctx, c)
			if err != nil {
				t.Fatal(err)
			}
			if slices.Contains(described, first) {
				t.Errorf("metroctl still describes %s after deleting it: %v", first, described)
			}
			for _, id := range rest {
				if !slices.Contains(described, id) {
					t.Errorf("metroctl does not describe %s: %v", id, described)
				}
			}
		}},
		{"ColdStartWithoutBootstrapNode", func(t *testing.T) {
			coldStart(t, ctx, c, 1, 2)
		}},
	}
	for _, s := range steps {
		if !t.Run(s.name, s.run) {
			return
		}
	}
}
