// Command launch-cluster starts a test cluster of Metropolis nodes in qemu
// virtual machines (see metropolis/test/launch) and keeps it running until
// it is interrupted (SIGINT or SIGTERM), then stops every VM and removes
// every file it made.
//
// Usage, from anywhere in the repository:
//
//	go run ./metropolis/test/launch/cli/launch-cluster [-num-nodes 3]
//	    [-consensus-member 1,2] [-kubernetes-controller 0-2] [-kubernetes-worker 1-2]
//	    [-cluster-domain D] [-tpm-mode M] [-storage-security P]
//	    [-cpu N] [-ram 2G] [-disk 4G] [-allow-reboot=false] [-image node.img]
//
// It builds metroctl and the node image (unless -image names one), launches
// the cluster, gives nodes the roles the role flags name (node indices, as
// in 0,3-5; node 0 bootstraps the cluster and is always a consensus member),
// and prints how to reach the cluster with metroctl, through the network
// switch's SOCKS proxy, including a wrapper script that passes the right
// flags. Progress goes to standard error; the nodes' consoles go to
// node-N.txt in the launch directory it names.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"metropolis.dev/metropolis/cli/metroctl/core"
	"metropolis.dev/metropolis/test/launch"
	"metropolis.dev/metropolis/test/launch/cli/internal/clusterflags"
	"metropolis.dev/osbase/test/qemu"
)

func main() {
	clusterflags.Main(run)
}

// roles are the node indices the role flags name.
type roles struct {
	consensusMember, kubernetesController, kubernetesWorker []int
}

// parseRoles parses the role flags for a cluster of numNodes nodes.
func parseRoles(cm, kc, kw string, numNodes int) (roles, error) {
	var r roles
	var err error
	if r.consensusMember, err = parseNodeList(cm, numNodes); err != nil {
		return r, fmt.Errorf("-consensus-member: %w", err)
	}
	if r.kubernetesController, err = parseNodeList(kc, numNodes); err != nil {
		return r, fmt.Errorf("-kubernetes-controller: %w", err)
	}
	if r.kubernetesWorker, err = parseNodeList(kw, numNodes); err != nil {
		return r, fmt.Errorf("-kubernetes-worker: %w", err)
	}
	members := map[int]bool{0: true}
	for _, i := range r.consensusMember {
		members[i] = true
	}
	for _, i := range r.kubernetesController {
		if !members[i] {
			return r, fmt.Errorf("-kubernetes-controller: node %d is not a consensus member, which a Kubernetes controller must be; add it to -consensus-member (node 0 always is one)", i)
		}
	}
	return r, nil
}

// run is the whole command. stop stops catching signals once the cluster is
// being torn down, so that a second interrupt ends the command at once.
func run(ctx context.Context, stop func(), args []string, stdout io.Writer, logf func(string, ...any)) error {
	fs := flag.NewFlagSet("launch-cluster", flag.ContinueOnError)
	numNodes := fs.Int("num-nodes", 3, "number of nodes")
	cm := fs.String("consensus-member", "", "nodes to make consensus members besides node 0, as indices like 1,2 or 1-2")
	kc := fs.String("kubernetes-controller", "", "nodes to make Kubernetes controllers (they must be consensus members), as indices like 0,3-5")
	kw := fs.String("kubernetes-worker", "", "nodes to make Kubernetes workers, as indices like 0,3-5")
	shared := clusterflags.Register(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if *numNodes < 1 {
		return fmt.Errorf("-num-nodes %d: want at least 1", *numNodes)
	}
	r, err := parseRoles(*cm, *kc, *kw, *numNodes)
	if err != nil {
		return err
	}
	opts, err := shared.Options(*numNodes, logf)
	if err != nil {
		return err
	}

	start := time.Now()
	dir, err := os.MkdirTemp("", "launch-cluster-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	opts.Dir = dir

	logf("Building metroctl...")
	metroctlStart := time.Now()
	metroctl := filepath.Join(dir, "bin", "metroctl")
	if err := launch.BuildMetroctl(ctx, metroctl, logf); err != nil {
		return fmt.Errorf("building metroctl: %w", err)
	}
	metroctlBuild := time.Since(metroctlStart)

	cl, err := launch.LaunchCluster(ctx, opts)
	if err != nil {
		return err
	}
	defer cl.Close()
	var rolesTime time.Duration
	if len(r.consensusMember)+len(r.kubernetesController)+len(r.kubernetesWorker) > 0 {
		rolesStart := time.Now()
		if err := applyRoles(ctx, cl, r); err != nil {
			return err
		}
		rolesTime = time.Since(rolesStart)
	}
	wrapper, err := cl.MakeMetroctlWrapper(metroctl)
	if err != nil {
		return err
	}

	fmt.Fprintln(stdout, "Launch: Cluster running!")
	fmt.Fprintf(stdout, "  To access cluster use: metroctl %s\n", strings.Join(cl.MetroctlFlags(), " "))
	fmt.Fprintf(stdout, "  Or use this handy wrapper: %s\n", wrapper)
	fmt.Fprintf(stdout, "  Node consoles: %s\n", filepath.Join(dir, "node-N.txt"))
	printTimings(stdout, metroctlBuild, cl.Timings, rolesTime, time.Since(start))

	<-ctx.Done()
	stop()
	logf("Stopping the cluster (interrupt again to kill it at once)...")
	return cl.Close()
}

// applyRoles gives the nodes the roles r names: consensus members first, as
// Kubernetes controllers must be ones.
func applyRoles(ctx context.Context, cl *launch.Cluster, r roles) error {
	for _, i := range r.consensusMember {
		if i == 0 {
			continue
		}
		if err := cl.MakeConsensusMember(ctx, cl.NodeIDs[i]); err != nil {
			return err
		}
	}
	for _, assign := range []struct {
		role  core.Role
		nodes []int
	}{
		{core.RoleKubernetesController, r.kubernetesController},
		{core.RoleKubernetesWorker, r.kubernetesWorker},
	} {
		for _, i := range assign.nodes {
			callCtx, cancel := context.WithTimeout(ctx, qemu.Timeout(time.Minute))
			_, err := cl.ManagementClient().UpdateNodeRoles(callCtx, assign.role.UpdateRequest(cl.NodeIDs[i], true))
			cancel()
			if err != nil {
				return fmt.Errorf("making node %d a %s: %w", i, assign.role, err)
			}
		}
	}
	return nil
}

// printTimings writes how long the launch took, step by step; roles is
// zero if no roles were given.
func printTimings(w io.Writer, metroctlBuild time.Duration, t launch.Timings, roles, total time.Duration) {
	round := func(d time.Duration) time.Duration { return d.Round(100 * time.Millisecond) }
	fmt.Fprintln(w, "  Timings:")
	fmt.Fprintf(w, "    metroctl build:  %s\n", round(metroctlBuild))
	if t.ImageBuild > 0 {
		fmt.Fprintf(w, "    image build:     %s\n", round(t.ImageBuild))
	}
	for i, d := range t.NodeUp {
		fmt.Fprintf(w, "    node %-3d HEALTHY: %s after its start\n", i, round(d))
	}
	if roles > 0 {
		fmt.Fprintf(w, "    roles:           %s\n", round(roles))
	}
	fmt.Fprintf(w, "    total:           %s\n", round(total))
}
