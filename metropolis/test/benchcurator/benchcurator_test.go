package benchcurator_test

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"testing"
	"time"

	"metropolis.dev/metropolis/test/benchcurator"
)

var (
	benchmark       = flag.Bool("benchmark", false, "run the benchmark given by -nodes, -members and -window instead of the tests")
	nodes           = flag.String("nodes", "100,1000,5000", "comma-separated numbers of simulated nodes")
	members         = flag.String("members", "1,3", "comma-separated numbers of control-plane members")
	window          = flag.Duration("window", 30*time.Second, "steady-state measurement window")
	asJSON          = flag.Bool("json", false, "print the results as JSON instead of a table")
	profile         = flag.String("profile", "", "directory to save pprof profiles of the control plane in (CPU, heap, goroutines)")
	throughResolver = flag.Bool("resolver", false, "connect nodes through the metropolis resolver, as nodes do, instead of once each to the leader")

	serveDir     = flag.String("serve", "", "internal: run as the control-plane process, handing off in this directory")
	serveMembers = flag.Int("serve-members", 1, "internal: control-plane members to run with -serve")
)

func TestMain(m *testing.M) {
	flag.Parse()
	if *benchmark && *serveDir == "" {
		if err := runBenchmark(); err != nil {
			fmt.Fprintf(os.Stderr, "benchcurator: %v\n", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// controlPlaneCommand runs this test binary again as the control-plane
// process, see TestControlPlaneProcess.
func controlPlaneCommand(dir string, members int) *exec.Cmd {
	return exec.Command(os.Args[0], "-test.run=^TestControlPlaneProcess$", "-test.timeout=0",
		"-serve="+dir, "-serve-members="+strconv.Itoa(members))
}

// TestControlPlaneProcess is the control-plane process of the benchmark: it
// runs the curators until the benchmark closes its standard input.
func TestControlPlaneProcess(t *testing.T) {
	if *serveDir == "" {
		t.Skip("only runs as the benchmark's control-plane process")
	}
	benchcurator.ServeControlPlane(t, *serveDir, *serveMembers)
	if _, err := io.Copy(io.Discard, os.Stdin); err != nil {
		t.Fatalf("waiting for the benchmark to end: %v", err)
	}
}

// TestSmoke runs the benchmark on a small cluster, with nodes connected
// either way, and checks that every figure was measured.
func TestSmoke(t *testing.T) {
	if *serveDir != "" {
		t.Skip("this is the control-plane process")
	}
	for _, viaResolver := range []bool{false, true} {
		t.Run(fmt.Sprintf("resolver=%v", viaResolver), func(t *testing.T) {
			t.Parallel()
			smoke(t, viaResolver)
		})
	}
}

func smoke(t *testing.T, viaResolver bool) {
	const nodes, members = 20, 1
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	res, err := benchcurator.Run(ctx, benchcurator.Config{
		Members:      members,
		Nodes:        nodes,
		Window:       5 * time.Second,
		ViaResolver:  viaResolver,
		ControlPlane: controlPlaneCommand,
		Progress:     testWriter{t},
	})
	if err != nil {
		t.Fatal(err)
	}
	var table strings.Builder
	benchcurator.WriteTableHeader(&table)
	benchcurator.WriteTableRow(&table, res)
	t.Logf("\n%s", table.String())

	if res.Heartbeat.Count < nodes/2 {
		t.Errorf("%d heartbeats measured in a 5s window of %d nodes heartbeating every 5s, want about %d", res.Heartbeat.Count, nodes, nodes)
	}
	if res.GetNodesCount != nodes+members {
		t.Errorf("GetNodes listed %d nodes, want %d", res.GetNodesCount, nodes+members)
	}
	if res.FanOutMissed != 0 || res.FanOut.Count != res.FanOutChanges*nodes {
		t.Errorf("fan-out: %d deliveries measured and %d missed, want %d measured", res.FanOut.Count, res.FanOutMissed, res.FanOutChanges*nodes)
	}
	if res.StreamErrors != 0 {
		t.Errorf("%d nodes lost a stream, first: %s", res.StreamErrors, res.FirstStreamError)
	}
	if res.ControlPlane.PeakRSS == 0 || res.ControlPlane.SteadyRSS == 0 || res.Client.PeakRSS == 0 {
		t.Errorf("memory not measured: %+v, client %+v", res.ControlPlane, res.Client)
	}
	// Each node's connection, and through the resolver one more per
	// curator, besides the control plane's own files.
	if wantConns := nodes * (1 + b2i(viaResolver)*members); res.ControlPlane.OpenFiles < wantConns {
		t.Errorf("control plane has %d files open, want at least the %d connections of the nodes", res.ControlPlane.OpenFiles, wantConns)
	}
	if !strings.HasPrefix(res.Leader, "0 (") {
		t.Errorf("leader %q, want curator 0, the only one", res.Leader)
	}
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// runBenchmark runs every combination of -members and -nodes and prints
// the results.
func runBenchmark() error {
	memberCounts, err := parseCounts("members", *members)
	if err != nil {
		return err
	}
	nodeCounts, err := parseCounts("nodes", *nodes)
	if err != nil {
		return err
	}
	if *profile != "" {
		if err := os.MkdirAll(*profile, 0o755); err != nil {
			return err
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if !*asJSON {
		benchcurator.WriteTableHeader(os.Stdout)
	}
	var results []*benchcurator.Result
	for _, m := range memberCounts {
		for _, n := range nodeCounts {
			res, err := benchcurator.Run(ctx, benchcurator.Config{
				Members:      m,
				Nodes:        n,
				Window:       *window,
				ControlPlane: controlPlaneCommand,
				ProfileDir:   *profile,
				ViaResolver:  *throughResolver,
				Progress:     os.Stderr,
			})
			if err != nil {
				return fmt.Errorf("%d member(s), %d nodes: %w", m, n, err)
			}
			results = append(results, res)
			if !*asJSON {
				benchcurator.WriteTableRow(os.Stdout, res)
			}
		}
	}
	if *asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(results)
	}
	fmt.Println()
	benchcurator.WriteTargets(os.Stdout, results)
	return nil
}

// parseCounts parses a comma-separated list of positive numbers.
func parseCounts(name, list string) ([]int, error) {
	var counts []int
	for f := range strings.SplitSeq(list, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("-%s: %q is not a positive number", name, f)
		}
		counts = append(counts, n)
	}
	return counts, nil
}

// testWriter writes progress to the test log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}
