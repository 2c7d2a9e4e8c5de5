// Command benchmesh measures the cluster network mesh (clusternet) on a
// launched test cluster (metropolis/test/launch):
//
//   - how long after a node is UP the mesh is complete with it: every node
//     has it as a peer and has shaken hands with it, and it with them. The
//     nodes after the first are approved one at a time, so each join is
//     measured on its own;
//   - the throughput between two nodes through the mesh and over the plain
//     network, with NodeManagement.ProbePeer, in alternating rounds in one
//     run, and their ratio: what WireGuard costs.
//
// Usage (make bench-mesh):
//
//	go run ./metropolis/test/benchmesh [-nodes 3] [-rounds 3] [-bytes 32MiB]
//
// Under TCG (no /dev/kvm) both the encryption and the network cards are
// emulated in software, so throughput is far below that of real machines
// and the ratio is what compares across machines; the load average is
// printed with the figures. The mesh times are sampled by polling every
// node, which takes a fraction of a second per round under TCG: they are
// accurate to about that.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"time"

	"metropolis.dev/metropolis/cli/metroctl/core"
	apb "metropolis.dev/metropolis/proto/api"
	cpb "metropolis.dev/metropolis/proto/common"
	"metropolis.dev/metropolis/test/launch"
	"metropolis.dev/osbase/test/measure"
	"metropolis.dev/osbase/test/qemu"
)

// Base timeouts (see qemu.Timeout).
const (
	runTimeout  = 40 * time.Minute
	stepTimeout = 8 * time.Minute
)

func main() {
	log.SetFlags(0)
	log.SetPrefix("benchmesh: ")
	nodes := flag.Int("nodes", 3, "nodes in the cluster")
	rounds := flag.Int("rounds", 3, "throughput measurements per path")
	size := flag.String("bytes", "32MiB", "bytes sent per throughput measurement")
	verbose := flag.Bool("v", false, "show the launch's progress")
	flag.Parse()
	bytes, err := launch.ParseSize(*size)
	if err != nil {
		log.Fatalf("-bytes: %v", err)
	}
	if *nodes < 2 || *rounds < 1 || bytes < 1 {
		log.Fatal("want -nodes of at least 2, -rounds of at least 1 and -bytes of at least 1")
	}
	logf := func(string, ...any) {}
	if *verbose {
		logf = log.Printf
	}
	if err := run(*nodes, *rounds, uint64(bytes), logf); err != nil {
		log.Fatal(err)
	}
}

func run(nodes, rounds int, bytes uint64, logf func(string, ...any)) error {
	ctx, cancel := context.WithTimeout(context.Background(), qemu.Timeout(runTimeout))
	defer cancel()
	cl, err := launch.LaunchCluster(ctx, launch.ClusterOptions{
		NumNodes:      nodes,
		LeaveNodesNew: true,
		Logf:          logf,
	})
	if err != nil {
		return err
	}
	defer cl.Close()

	var joins []time.Duration
	for i := 1; i < nodes; i++ {
		d, err := measureJoin(ctx, cl, i)
		if err != nil {
			return fmt.Errorf("node %d: %w", i, err)
		}
		log.Printf("node %d: mesh complete %s after it was UP", i, measure.Round(d))
		joins = append(joins, d)
	}

	var mesh, plain []float64
	from, to := cl.NodeIDs[0], cl.NodeIDs[1]
	for r := range rounds {
		for _, path := range []apb.ProbePeerRequest_Path{apb.ProbePeerRequest_PATH_MESH, apb.ProbePeerRequest_PATH_EXTERNAL} {
			res, err := cl.ProbePeer(ctx, from, to, path, bytes, "")
			if err != nil {
				return fmt.Errorf("probe %d through %s: %w", r+1, path, err)
			}
			rate := float64(res.Bytes) / res.Duration.AsDuration().Seconds() / 1e6
			log.Printf("round %d, %s: %d bytes to %s in %s, %.1f MB/s", r+1, path, res.Bytes, res.Address, measure.Round(res.Duration.AsDuration()), rate)
			if path == apb.ProbePeerRequest_PATH_MESH {
				mesh = append(mesh, rate)
			} else {
				plain = append(plain, rate)
			}
		}
	}

	meshRate, plainRate := measure.Median(mesh), measure.Median(plain)
	fmt.Printf("benchmesh: %d nodes, %d rounds of %d bytes from node 0 to node 1, load average %s\n", nodes, rounds, bytes, measure.LoadAverage())
	fmt.Printf("  node UP to full mesh:          median %s (%s)\n", measure.Round(measure.Median(joins)), measure.RoundAll(joins))
	fmt.Printf("  throughput through the mesh:   median %.1f MB/s\n", meshRate)
	fmt.Printf("  throughput, plain network:     median %.1f MB/s\n", plainRate)
	fmt.Printf("  mesh / plain:                  %.2f\n", meshRate/plainRate)
	return nil
}

// measureJoin approves node i, waits until it is UP, then until the mesh
// of it and the nodes before it is complete, and returns the time between
// the two.
func measureJoin(ctx context.Context, cl *launch.Cluster, i int) (time.Duration, error) {
	id := cl.NodeIDs[i]
	if err := cl.ApproveNode(ctx, id); err != nil {
		return 0, err
	}
	var up time.Time
	if err := poll(ctx, func(ctx context.Context) error {
		n, err := core.GetNode(ctx, cl.ManagementClient(), id)
		if err != nil {
			return err
		}
		if n.State != cpb.NodeState_NODE_STATE_UP {
			return fmt.Errorf("node is %s", n.State)
		}
		up = time.Now()
		return nil
	}); err != nil {
		return 0, fmt.Errorf("waiting until UP: %w", err)
	}
	ids := cl.NodeIDs[:i+1]
	if err := poll(ctx, func(ctx context.Context) error {
		return cl.MeshConnected(ctx, ids...)
	}); err != nil {
		return 0, fmt.Errorf("waiting for the full mesh: %w", err)
	}
	return time.Since(up), nil
}

// poll calls f until it returns nil, as often as it can, until stepTimeout
// runs out.
func poll(ctx context.Context, f func(ctx context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, qemu.Timeout(stepTimeout))
	defer cancel()
	for {
		err := f(ctx)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return errors.Join(ctx.Err(), err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}
