// Package e2etest is what the end-to-end suites (metropolis/test/e2e/...)
// share: launching a cluster for a test, with its consoles in the test's
// log when it fails, and running the real metroctl binary against it.
//
// Each suite is its own test binary that launches one cluster and runs its
// tests against it in order, as a cluster under software emulation takes
// minutes to start.
package e2etest

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	ipb "metropolis.dev/metropolis/node/core/curator/proto/api"
	"metropolis.dev/metropolis/test/launch"
	"metropolis.dev/osbase/test/measure"
	"metropolis.dev/osbase/test/qemu"
)

// Skip skips t unless it can boot VMs the way CI does: as root, without
// -short, with qemu and swtpm installed.
func Skip(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("boots virtual machines")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root, as the VM tests run in CI")
	}
	for _, tool := range []string{"qemu-system-x86_64", "qemu-img", "swtpm"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed", tool)
		}
	}
}

// Context returns a context for a whole suite of t: the base timeout
// scaled for the machine (qemu.Timeout), ending a minute before go test's
// own deadline, so that a wait that runs out says what it waited for.
func Context(t *testing.T, base time.Duration) context.Context {
	t.Helper()
	timeout := qemu.Timeout(base)
	if deadline, ok := t.Deadline(); ok && time.Until(deadline)-time.Minute < timeout {
		timeout = time.Until(deadline) - time.Minute
	}
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	t.Cleanup(cancel)
	return ctx
}

// Cluster is a launched cluster and a metroctl built for it.
type Cluster struct {
	*launch.Cluster
	// Metroctl is the path of the metroctl binary.
	Metroctl string
}

// Launch launches a cluster with opts for t, builds metroctl, and closes
// the cluster when t ends, logging the nodes' last console lines if t
// failed.
func Launch(t *testing.T, ctx context.Context, opts launch.ClusterOptions) *Cluster {
	t.Helper()
	if opts.Logf == nil {
		opts.Logf = t.Logf
	}
	bin := t.TempDir()
	metroctl := filepath.Join(bin, "metroctl")
	if err := launch.BuildMetroctl(ctx, metroctl, opts.Logf); err != nil {
		t.Fatalf("building metroctl: %v", err)
	}
	cl, err := launch.LaunchCluster(ctx, opts)
	if err != nil {
		t.Fatalf("launching the cluster: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			for i := range cl.NodeIDs {
				if con := cl.Console(i); con != nil {
					t.Logf("last console lines of node %d:\n\t%s", i, strings.Join(con.Tail(60), "\n\t"))
				}
			}
		}
		if err := cl.Close(); err != nil {
			t.Errorf("closing the cluster: %v", err)
		}
	})
	t.Logf("Cluster launched in %s (image build %s; nodes UP after %s).", measure.Round(cl.Timings.Total), measure.Round(cl.Timings.ImageBuild), measure.RoundAll(cl.Timings.NodeUp))
	return &Cluster{Cluster: cl, Metroctl: metroctl}
}

// Run runs metroctl with the cluster's flags and args, returning its
// standard output, or an error with its standard error.
func (c *Cluster) Run(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, c.Metroctl, append(c.MetroctlFlags(), args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("metroctl %s: %w\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String(), nil
}

// Poll calls f until it returns nil, every second, failing t with f's last
// error after timeout (scaled, see qemu.Timeout) or when ctx ends.
func Poll(t *testing.T, ctx context.Context, what string, timeout time.Duration, f func(ctx context.Context) error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, qemu.Timeout(timeout))
	defer cancel()
	for {
		err := f(ctx)
		if err == nil {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("waiting until %s: %v", what, err)
		case <-time.After(time.Second):
		}
	}
}

// callTimeout bounds one call to the cluster (scaled, see qemu.Timeout), so
// that a call to a curator that went away does not use up a whole step.
const callTimeout = 30 * time.Second

// ConsensusMembers returns the cluster's etcd members by node ID, with
// their status, as the curator leader reports them.
func (c *Cluster) ConsensusMembers(ctx context.Context) (map[string]ipb.GetConsensusStatusResponse_EtcdMember_Status, error) {
	conn, err := c.CuratorClient()
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(ctx, qemu.Timeout(callTimeout))
	defer cancel()
	res, err := ipb.NewCuratorClient(conn).GetConsensusStatus(ctx, &ipb.GetConsensusStatusRequest{})
	if err != nil {
		return nil, err
	}
	members := make(map[string]ipb.GetConsensusStatusResponse_EtcdMember_Status)
	for _, m := range res.EtcdMember {
		members[m.Id] = m.Status
	}
	return members, nil
}

// GrowConsensus makes every node of the cluster a consensus member and
// waits until each is a full (voting) etcd member, for up to timeout
// (scaled, see qemu.Timeout).
func (c *Cluster) GrowConsensus(t *testing.T, ctx context.Context, timeout time.Duration) {
	t.Helper()
	for _, id := range c.NodeIDs[1:] {
		if err := c.MakeConsensusMember(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	Poll(t, ctx, "every node is a full consensus member", timeout, func(ctx context.Context) error {
		members, err := c.ConsensusMembers(ctx)
		if err != nil {
			return err
		}
		for _, id := range c.NodeIDs {
			if members[id] != ipb.GetConsensusStatusResponse_EtcdMember_STATUS_FULL {
				return fmt.Errorf("%s is a consensus member with status %v, want FULL (members: %v)", id, members[id], members)
			}
		}
		return nil
	})
}
