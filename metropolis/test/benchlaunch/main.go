// Command benchlaunch measures how fast test clusters come up, the way
// launch-cluster starts them (metropolis/test/launch): for each of several
// launches of a fresh cluster, how long each node took from the start of its
// VM to UP and HEALTHY (node 0 bootstraps the cluster, the others register
// and are approved), how long the whole launch took, and how long a reboot
// of a registered node took until the node was HEALTHY again. It prints the
// medians.
//
// Usage (make bench-launch):
//
//	go run ./metropolis/test/benchlaunch [-runs 3] [-nodes 3] [-storage-security needs-insecure]
//
// The image is built once, before the first launch, and its build time is
// reported on its own; a launch-cluster from scratch takes the image build
// plus the launch. Launches run one after another. Under TCG (no /dev/kvm)
// the figures are dominated by software emulation, and other load on the
// machine shows in them, so the load average is printed with them.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	"metropolis.dev/metropolis/test/launch"
	"metropolis.dev/osbase/test/measure"
)

// runTimeout bounds one launch with its reboot.
const runTimeout = 30 * time.Minute

func main() {
	log.SetFlags(0)
	log.SetPrefix("benchlaunch: ")
	runs := flag.Int("runs", 3, "clusters to launch, one after another")
	nodes := flag.Int("nodes", 3, "nodes per cluster")
	storage := flag.String("storage-security", launch.DefaultStorageSecurity, "the clusters' storage security policy")
	verbose := flag.Bool("v", false, "show the launches' progress")
	flag.Parse()
	if *runs < 1 || *nodes < 2 {
		log.Fatal("want -runs of at least 1 and -nodes of at least 2 (a reboot of a registered node is measured)")
	}
	if err := run(*runs, *nodes, *storage, *verbose); err != nil {
		log.Fatal(err)
	}
}

// result is what one launch measured.
type result struct {
	bootstrapUp time.Duration
	registerUp  []time.Duration
	total       time.Duration
	reboot      time.Duration
}

func run(runs, nodes int, storage string, verbose bool) error {
	dir, err := os.MkdirTemp("", "benchlaunch-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	logf := func(string, ...any) {}
	if verbose {
		logf = log.Printf
	}
	image := filepath.Join(dir, "node.img")
	start := time.Now()
	if err := launch.BuildImage(context.Background(), image, logf); err != nil {
		return err
	}
	imageBuild := time.Since(start)
	log.Printf("image built in %s", imageBuild.Round(100*time.Millisecond))

	var results []result
	for i := range runs {
		r, err := launchOnce(image, nodes, storage, logf)
		if err != nil {
			return fmt.Errorf("launch %d: %w", i+1, err)
		}
		log.Printf("launch %d: node 0 UP+HEALTHY after %s, registered nodes after %s, all in %s; reboot to HEALTHY %s",
			i+1, measure.Round(r.bootstrapUp), measure.RoundAll(r.registerUp), measure.Round(r.total), measure.Round(r.reboot))
		results = append(results, r)
	}

	median := func(pick func(result) []time.Duration) time.Duration {
		var all []time.Duration
		for _, r := range results {
			all = append(all, pick(r)...)
		}
		return measure.Median(all)
	}
	fmt.Printf("benchlaunch: %d launches of %d nodes, storage %s, load average %s\n", runs, nodes, storage, measure.LoadAverage())
	fmt.Printf("  image build:                               %s\n", measure.Round(imageBuild))
	fmt.Printf("  bootstrap node, VM start to UP+HEALTHY:    median %s\n", measure.Round(median(func(r result) []time.Duration { return []time.Duration{r.bootstrapUp} })))
	fmt.Printf("  registering node, VM start to UP+HEALTHY:  median %s\n", measure.Round(median(func(r result) []time.Duration { return r.registerUp })))
	fmt.Printf("  launch, all nodes UP+HEALTHY:              median %s (plus the image build from scratch)\n", measure.Round(median(func(r result) []time.Duration { return []time.Duration{r.total} })))
	fmt.Printf("  reboot of a node to HEALTHY:               median %s\n", measure.Round(median(func(r result) []time.Duration { return []time.Duration{r.reboot} })))
	return nil
}

func launchOnce(image string, nodes int, storage string, logf func(string, ...any)) (result, error) {
	ctx, cancel := context.WithTimeout(context.Background(), runTimeout)
	defer cancel()
	cl, err := launch.LaunchCluster(ctx, launch.ClusterOptions{
		NumNodes:        nodes,
		Image:           image,
		StorageSecurity: storage,
		Logf:            logf,
	})
	if err != nil {
		return result{}, err
	}
	defer cl.Close()
	r := result{
		bootstrapUp: cl.Timings.NodeUp[0],
		registerUp:  cl.Timings.NodeUp[1:],
		total:       cl.Timings.Total,
	}
	start := time.Now()
	if err := cl.RebootNode(ctx, 1); err != nil {
		return result{}, err
	}
	r.reboot = time.Since(start)
	return r, nil
}
