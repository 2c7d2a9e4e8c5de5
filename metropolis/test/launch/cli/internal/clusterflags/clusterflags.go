// Package clusterflags holds the command-line flags the launch commands
// share: how the cluster is configured and what its nodes' machines are
// like. Both commands describe a cluster the same way, so that what works
// with one works with the other.
package clusterflags

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"maps"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"

	"metropolis.dev/metropolis/cli/metroctl/core"
	"metropolis.dev/metropolis/test/launch"
)

// Flags are the shared flags' values.
type Flags struct {
	clusterDomain   string
	tpmMode         string
	storageSecurity string
	cpus            int
	ram             string
	disk            string
	allowReboot     bool
	image           string
}

// Register defines the shared flags on fs.
func Register(fs *flag.FlagSet) *Flags {
	f := &Flags{}
	fs.StringVar(&f.clusterDomain, "cluster-domain", launch.DefaultClusterDomain, "the cluster's DNS domain")
	fs.StringVar(&f.tpmMode, "tpm-mode", launch.DefaultTPMMode, "the cluster's TPM mode: "+strings.Join(keys(core.TPMModes), ", "))
	fs.StringVar(&f.storageSecurity, "storage-security", launch.DefaultStorageSecurity, "the cluster's storage security policy: "+strings.Join(keys(core.StorageSecurityPolicies), ", "))
	fs.IntVar(&f.cpus, "cpu", 1, "virtual CPUs per node")
	fs.StringVar(&f.ram, "ram", fmt.Sprintf("%dM", launch.DefaultMemoryMiB), "memory per node, such as 2048M or 2G")
	fs.StringVar(&f.disk, "disk", launch.DefaultDiskSize, "disk size per node, such as 4G (a sparse overlay of the image)")
	fs.BoolVar(&f.allowReboot, "allow-reboot", true, "keep a node's VM running when the node reboots itself, as a machine does; with -allow-reboot=false the VM ends instead, which shows a node that reboots unexpectedly")
	fs.StringVar(&f.image, "image", "", "node image built by build/mkimage (default: build one)")
	return f
}

// Options returns the cluster options the flags describe, for numNodes
// nodes, or an error naming the first invalid flag.
func (f *Flags) Options(numNodes int, logf func(string, ...any)) (launch.ClusterOptions, error) {
	if f.cpus < 1 {
		return launch.ClusterOptions{}, fmt.Errorf("-cpu %d: want at least 1", f.cpus)
	}
	mem, err := launch.ParseMiB(f.ram)
	if err != nil {
		return launch.ClusterOptions{}, fmt.Errorf("-ram: %w", err)
	}
	if _, err := launch.ParseSize(f.disk); err != nil {
		return launch.ClusterOptions{}, fmt.Errorf("-disk: %w", err)
	}
	if _, ok := core.TPMModes[f.tpmMode]; !ok {
		return launch.ClusterOptions{}, fmt.Errorf("-tpm-mode %q: want one of %s", f.tpmMode, strings.Join(keys(core.TPMModes), ", "))
	}
	if _, ok := core.StorageSecurityPolicies[f.storageSecurity]; !ok {
		return launch.ClusterOptions{}, fmt.Errorf("-storage-security %q: want one of %s", f.storageSecurity, strings.Join(keys(core.StorageSecurityPolicies), ", "))
	}
	return launch.ClusterOptions{
		NumNodes:        numNodes,
		Image:           f.image,
		TPMMode:         f.tpmMode,
		StorageSecurity: f.storageSecurity,
		ClusterDomain:   f.clusterDomain,
		Node: launch.NodeOptions{
			CPUs:        f.cpus,
			MemoryMiB:   mem,
			DiskSize:    f.disk,
			AllowReboot: f.allowReboot,
		},
		Logf: logf,
	}, nil
}

// Logger returns a logger for a launch command's progress, on standard
// error, each line prefixed with "Launch: ".
func Logger() *log.Logger {
	return log.New(os.Stderr, "Launch: ", 0)
}

// Command is the body of a launch command: it runs with the command line's
// arguments until ctx is done (SIGINT or SIGTERM), writing what the user
// asked for to stdout and progress through logf. It calls stop once it
// tears down, so that a second interrupt ends the process at once.
type Command func(ctx context.Context, stop func(), args []string, stdout io.Writer, logf func(string, ...any)) error

// Main runs cmd as the process's main function and exits with its result.
func Main(cmd Command) {
	logger := Logger()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := cmd(ctx, stop, os.Args[1:], os.Stdout, logger.Printf)
	stop()
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		logger.Print(err)
		os.Exit(1)
	}
}

func keys[V any](m map[string]V) []string {
	return slices.Sorted(maps.Keys(m))
}
