package launch

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	"metropolis.dev/metropolis/cli/metroctl/core"
	"metropolis.dev/metropolis/node"
)

// ClusterOptions describe the cluster LaunchCluster starts. The zero value
// launches a single node from a freshly built image.
type ClusterOptions struct {
	// NumNodes is the number of nodes; 0 means 1. Node 0 bootstraps the
	// cluster, the others register into it.
	NumNodes int
	// Image is the node disk image (as written by build/mkimage, without
	// parameters). Empty means building one into the launch directory first.
	Image string
	// Dir is the launch directory: node state, console logs, the switch's
	// sockets and capture, the metroctl configuration. Empty means a new
	// temporary directory, which Close removes; a given directory is kept.
	// unix socket paths below it must stay under 108 bytes, so keep it
	// short.
	Dir string
	// Node describes every node's machine.
	Node NodeOptions
	// TPMMode is the cluster's TPM mode, a name from core.TPMModes; empty
	// means DefaultTPMMode.
	TPMMode string
	// StorageSecurity is the cluster's storage security policy, a name from
	// core.StorageSecurityPolicies; empty means DefaultStorageSecurity.
	StorageSecurity string
	// ClusterDomain is the cluster's DNS domain; empty means
	// DefaultClusterDomain.
	ClusterDomain string
	// LeaveNodesNew leaves the registered nodes unapproved (NEW), for tests
	// of approval. LaunchCluster then only waits until they registered.
	LeaveNodesNew bool
	// Logf receives progress lines; nil discards them.
	Logf func(format string, args ...any)
	// NodeConsole receives every line of every node's serial console. Nil
	// writes them to node-N.txt in Dir instead.
	NodeConsole func(node int, line string)
}

// NodeOptions describe a node's machine.
type NodeOptions struct {
	// CPUs is the number of virtual CPUs; 0 means 1.
	CPUs int
	// MemoryMiB is the memory; 0 means DefaultMemoryMiB.
	MemoryMiB int
	// DiskSize is the disk's size, as ParseSize reads it ("4G"); empty means
	// DefaultDiskSize. The disk is a sparse copy-on-write overlay of the
	// image, so space is only used as the node writes; the node grows its
	// data partition into what the image leaves free.
	DiskSize string
	// AllowReboot keeps a node's VM running when the node reboots itself
	// (metroctl node reboot, an update). By default the VM ends instead, so
	// that a node that crashes and reboots is noticed at once rather than
	// when a wait times out.
	AllowReboot bool
}

// Defaults of ClusterOptions and NodeOptions.
const (
	// DefaultTPMMode requires a TPM: every node has one (swtpm), so test
	// clusters seal node secrets the way real ones do.
	DefaultTPMMode = "required"
	// DefaultStorageSecurity keeps the nodes' data unencrypted. A test
	// cluster holds no secrets, and under software emulation setting up
	// dm-crypt, let alone dm-integrity (which writes the whole partition),
	// would dominate the time a node takes to come up.
	DefaultStorageSecurity = "needs-insecure"
	// DefaultClusterDomain is the cluster's DNS domain, as in a cluster
	// bootstrapped without one.
	DefaultClusterDomain = "cluster.internal"
	// DefaultMemoryMiB leaves room for the control plane and, later,
	// Kubernetes; the host only spends what the guest touches.
	DefaultMemoryMiB = 2048
	// DefaultDiskSize is the nodes' disk size.
	DefaultDiskSize = "4G"
)

// maxNodes bounds NumNodes: nodes get one address each from the switch's
// /24, and node MACs number them in two bytes.
const maxNodes = 200

// withDefaults returns o with defaults filled in, or an error naming the
// first invalid option.
func (o ClusterOptions) withDefaults() (ClusterOptions, error) {
	if o.NumNodes == 0 {
		o.NumNodes = 1
	}
	if o.NumNodes < 0 || o.NumNodes > maxNodes {
		return o, fmt.Errorf("NumNodes is %d, want 1 to %d", o.NumNodes, maxNodes)
	}
	if o.TPMMode == "" {
		o.TPMMode = DefaultTPMMode
	}
	if _, ok := core.TPMModes[o.TPMMode]; !ok {
		return o, fmt.Errorf("unknown TPM mode %q; modes are %s", o.TPMMode, strings.Join(sortedKeys(core.TPMModes), ", "))
	}
	if o.StorageSecurity == "" {
		o.StorageSecurity = DefaultStorageSecurity
	}
	if _, ok := core.StorageSecurityPolicies[o.StorageSecurity]; !ok {
		return o, fmt.Errorf("unknown storage security policy %q; policies are %s", o.StorageSecurity, strings.Join(sortedKeys(core.StorageSecurityPolicies), ", "))
	}
	if o.ClusterDomain == "" {
		o.ClusterDomain = DefaultClusterDomain
	}
	if err := node.ValidateClusterDomain(o.ClusterDomain); err != nil {
		return o, fmt.Errorf("cluster domain %q: %w", o.ClusterDomain, err)
	}
	if o.Node.CPUs == 0 {
		o.Node.CPUs = 1
	}
	if o.Node.CPUs < 0 {
		return o, fmt.Errorf("node CPUs is %d, want at least 1", o.Node.CPUs)
	}
	if o.Node.MemoryMiB == 0 {
		o.Node.MemoryMiB = DefaultMemoryMiB
	}
	if o.Node.MemoryMiB < 0 {
		return o, fmt.Errorf("node memory is %d MiB, want a positive size", o.Node.MemoryMiB)
	}
	if o.Node.DiskSize == "" {
		o.Node.DiskSize = DefaultDiskSize
	}
	if _, err := ParseSize(o.Node.DiskSize); err != nil {
		return o, fmt.Errorf("node disk size: %w", err)
	}
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
	return o, nil
}

// ParseSize parses a size in bytes written as a whole number followed by a
// binary unit: K, M, G or T (KiB to TiB), optionally followed by "iB" or
// "B", in any case: "512M", "2G", "1TiB". A unit is required, as a bare
// number is read as bytes by some tools and as MiB by others.
func ParseSize(s string) (int64, error) {
	digits := strings.TrimLeftFunc(s, func(r rune) bool { return r >= '0' && r <= '9' })
	number, unit := s[:len(s)-len(digits)], strings.ToUpper(digits)
	if number == "" {
		return 0, fmt.Errorf("size %q: want a whole number with a unit, such as 512M or 2G", s)
	}
	unit = strings.TrimSuffix(strings.TrimSuffix(unit, "B"), "I")
	var shift uint
	switch unit {
	case "K":
		shift = 10
	case "M":
		shift = 20
	case "G":
		shift = 30
	case "T":
		shift = 40
	case "":
		return 0, fmt.Errorf("size %q has no unit: write K, M, G or T after the number, such as %sM", s, number)
	default:
		return 0, fmt.Errorf("size %q: unknown unit %q, want K, M, G or T", s, digits)
	}
	n, err := strconv.ParseInt(number, 10, 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) {
		return 0, fmt.Errorf("size %q: %w", s, err)
	}
	if err != nil || n > math.MaxInt64>>shift {
		return 0, fmt.Errorf("size %q is too large", s)
	}
	if n == 0 {
		return 0, fmt.Errorf("size %q is zero", s)
	}
	return n << shift, nil
}

// ParseMiB parses a size as ParseSize does and returns it in MiB, which it
// must be a whole number of.
func ParseMiB(s string) (int, error) {
	b, err := ParseSize(s)
	if err != nil {
		return 0, err
	}
	if b%(1<<20) != 0 {
		return 0, fmt.Errorf("size %q is not a whole number of MiB", s)
	}
	if b>>20 > math.MaxInt32 {
		return 0, fmt.Errorf("size %q is too large", s)
	}
	return int(b >> 20), nil
}
