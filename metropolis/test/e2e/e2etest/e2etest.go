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

	"metropolis.dev/metropolis/test/launch"
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
	t.Logf("Cluster launched in %s (image build %s; nodes UP after %v).", cl.Timings.Total.Round(100*time.Millisecond), cl.Timings.ImageBuild.Round(100*time.Millisecond), roundAll(cl.Timings.NodeUp))
	return &Cluster{Cluster: cl, Metroctl: metroctl}
}

func roundAll(ds []time.Duration) []string {
	var out []string
	for _, d := range ds {
		out = append(out, d.Round(100*time.Millisecond).String())
	}
	return out
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
