// Command launch boots a single Metropolis node in a qemu virtual machine,
// which bootstraps a cluster of its own, and shows its serial console in the
// terminal until it is interrupted (Ctrl-C or SIGTERM), then stops the VM
// and removes every file it made. It is the quickest way to watch a node
// boot; launch-cluster starts several.
//
// Usage, from anywhere in the repository:
//
//	go run ./metropolis/test/launch/cli/launch [-cluster-domain D]
//	    [-tpm-mode M] [-storage-security P] [-cpu N] [-ram 2G] [-disk 4G]
//	    [-allow-reboot=false] [-image node.img]
//
// It builds the node image unless -image names one. The console goes to
// standard output, progress to standard error. Once the node is UP, it
// prints the metroctl flags that reach it (through the network switch's
// SOCKS proxy) with the owner's credentials.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"
	"sync"

	"metropolis.dev/metropolis/test/launch"
	"metropolis.dev/metropolis/test/launch/cli/internal/clusterflags"
)

func main() {
	clusterflags.Main(run)
}

// run is the whole command. stop stops catching signals once the node is
// being torn down, so that a second interrupt ends the command at once.
func run(ctx context.Context, stop func(), args []string, stdout io.Writer, logf func(string, ...any)) error {
	fs := flag.NewFlagSet("launch", flag.ContinueOnError)
	shared := clusterflags.Register(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	opts, err := shared.Options(1, logf)
	if err != nil {
		return err
	}
	// Console lines and progress come from different goroutines; each
	// line is written whole.
	var mu sync.Mutex
	opts.NodeConsole = func(_ int, line string) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintln(stdout, line)
	}
	cl, err := launch.LaunchCluster(ctx, opts)
	if err != nil {
		return err
	}
	defer cl.Close()
	logf("Node %s is UP at %s.", cl.NodeIDs[0], cl.NodeAddress(0))
	logf("To access it use: metroctl %s", strings.Join(cl.MetroctlFlags(), " "))

	<-ctx.Done()
	stop()
	logf("Stopping the node (interrupt again to kill it at once)...")
	return cl.Close()
}
