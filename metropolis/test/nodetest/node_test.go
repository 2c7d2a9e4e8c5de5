package nodetest

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"metropolis.dev/osbase/test/qemu"
)

// Base timeouts under TCG on 2 cores (see qemu.Timeout).
const (
	// bootTimeout is from qemu's start until the node has an address and
	// its storage, about 60 s on a first boot with swtpm (mkfs included).
	bootTimeout = 4 * time.Minute
	// shutdownTimeout is from ctrl-alt-del until qemu exits.
	shutdownTimeout = time.Minute
)

// diskSize is the virtual size of the VMs' disk: larger than the image, so
// that the node grows its data partition past the 300 MiB XFS needs.
const diskSize = "1G"

// machine is what makes a VM the same machine across boots: its disk, its
// TPM's state and its firmware's variables.
type machine struct {
	disk, tpmDir, vars string
}

// newMachine returns a machine whose disk is a fresh overlay of the image.
func newMachine(t testing.TB) *machine {
	t.Helper()
	dir := t.TempDir()
	m := &machine{
		disk:   filepath.Join(dir, "disk.qcow2"),
		tpmDir: filepath.Join(dir, "tpm"),
		vars:   filepath.Join(dir, "vars.fd"),
	}
	out, err := exec.Command("qemu-img", "create", "-q", "-f", "qcow2", "-b", imagePath, "-F", "raw", m.disk, diskSize).CombinedOutput()
	if err != nil {
		t.Fatalf("creating the disk: %v\n%s", err, out)
	}
	return m
}

// vm is a running boot of a machine.
type vm struct {
	*qemu.VM
	monitor string
}

// boot starts m with the TPM whose state is in tpmDir.
func (m *machine) boot(t testing.TB, name, tpmDir string) *vm {
	t.Helper()
	monitor := filepath.Join(t.TempDir(), "monitor.sock")
	v := qemu.StartT(t, qemu.Options{
		Name:      name,
		MemoryMiB: 1024,
		ExtraArgs: []string{"-monitor", "unix:" + monitor + ",server=on,wait=off"},
	},
		qemu.OVMF{Vars: m.vars},
		qemu.TPM{StateDir: tpmDir},
		qemu.Disk{Path: m.disk, Format: "qcow2"},
		qemu.TapNetwork{Device: tapName, MAC: nodeMAC},
	)
	return &vm{VM: v, monitor: monitor}
}

// expectAll waits for lines matching each of res, in any order, and returns
// the submatches of each. It fails the test at the first line matching
// fail, such as a kernel panic.
func (v *vm) expectAll(t testing.TB, within time.Duration, fail *regexp.Regexp, res ...*regexp.Regexp) [][]string {
	t.Helper()
	found := make([][]string, len(res))
	remaining := len(res)
	var failed string
	ctx, cancel := context.WithTimeout(t.Context(), qemu.Timeout(within))
	defer cancel()
	_, err := v.Console().ExpectFunc(ctx, fmt.Sprintf("lines matching %v", res), func(line string) bool {
		if fail != nil && fail.MatchString(line) {
			failed = line
			return true
		}
		for i, re := range res {
			if found[i] == nil {
				if m := re.FindStringSubmatch(line); m != nil {
					found[i] = m
					remaining--
				}
			}
		}
		return remaining == 0
	})
	if err != nil {
		t.Fatalf("%v\nseen: %q", err, found)
	}
	if failed != "" {
		t.Fatalf("the boot failed: %s", failed)
	}
	return found
}

// shutdown presses ctrl-alt-del, which the node's init turns into a
// graceful stop (the core unmounts its storage) and a reboot, which ends
// qemu.
func (v *vm) shutdown(t testing.TB) {
	t.Helper()
	conn, err := net.Dial("unix", v.monitor)
	if err != nil {
		t.Fatalf("connecting to qemu's monitor: %v", err)
	}
	defer conn.Close()
	// The monitor greets first; a command sent before is lost.
	if _, err := bufio.NewReader(conn).ReadString('\n'); err != nil {
		t.Fatalf("reading qemu's monitor: %v", err)
	}
	if _, err := conn.Write([]byte("sendkey ctrl-alt-delete\n")); err != nil {
		t.Fatalf("pressing ctrl-alt-del: %v", err)
	}
	v.expectAll(t, shutdownTimeout, nil,
		regexp.MustCompile(`init: received interrupt: stopping every runnable`),
		regexp.MustCompile(`init: /init exited with status 0; rebooting`))
	ctx, cancel := context.WithTimeout(t.Context(), qemu.Timeout(shutdownTimeout))
	defer cancel()
	select {
	case <-v.Done():
		if err := v.Wait(); err != nil {
			t.Fatalf("qemu: %v", err)
		}
	case <-ctx.Done():
		t.Fatal("qemu did not exit after the node rebooted")
	}
}

// bootFailure matches lines that end a boot.
var bootFailure = regexp.MustCompile(`Kernel panic|stage1: boot stopped|bringup: (fatal|panic)|init: .* rebooting`)

var (
	reNetworkUp = regexp.MustCompile(`Milestone: network up ([0-9.]+) s after`)
	reStatus    = regexp.MustCompile(`Node status: address ` + regexp.QuoteMeta(nodeIP.String()) + `, storage mounted \(insecure\), time synced with ` + regexp.QuoteMeta(hostIP.String()) + `:123`)
	reDNSCheck  = regexp.MustCompile(`DNS check: ` + regexp.QuoteMeta(probeName) + ` resolves to ` + regexp.QuoteMeta(probeAddress) + ` through the node's resolver`)
	reNew       = regexp.MustCompile(`Data partition ready: insecure, set up on this boot, filesystem created (\S+)`)
	reExisting  = regexp.MustCompile(`Data partition ready: insecure, set up on an earlier boot, filesystem created (\S+)`)
	reMemory    = regexp.MustCompile(`Memory: core VmRSS .*`)
	reEnrolled  = regexp.MustCompile(`Cluster enrolment done\.`)
	reBootstrap = regexp.MustCompile(`Waiting for the control plane to create the cluster as node (metropolis-[0-9a-f]+)\.`)
	reJoined    = regexp.MustCompile(`Joined the cluster as node (metropolis-[0-9a-f]+)\.`)
)

// TestNodeLifecycle boots one machine four times: the first boot
// bootstraps a cluster, setting up storage and sealing the node's
// configuration with the TPM; the second unseals it, finds the filesystem
// the first made and rejoins as the same node; the third, with another TPM,
// fails to unseal and says why, without touching the data; the fourth, with
// the machine's TPM again, finds the data as it was.
func TestNodeLifecycle(t *testing.T) {
	network := startNetwork(t)
	m := newMachine(t)

	t.Log("first boot: new storage")
	v := m.boot(t, "first", m.tpmDir)
	got := v.expectAll(t, bootTimeout, bootFailure, reNetworkUp, reStatus, reDNSCheck, reNew, reMemory, reBootstrap, reEnrolled)
	created, id := got[3][1], got[5][1]
	t.Logf("%s; data partition created %s; node %s", got[4][0], created, id)
	vendorClasses, queries := network.seen()
	if !slices.Contains(vendorClasses, "dev.monogon.metropolis.node.v1") {
		t.Errorf("DHCP requests had vendor classes %q, want dev.monogon.metropolis.node.v1", vendorClasses)
	}
	if !slices.ContainsFunc(queries, func(q dnsQuery) bool {
		return q.name == probeName+"." && strings.HasPrefix(q.from, nodeIP.String()+":")
	}) {
		t.Errorf("the test's DNS server was not asked for %s by the node: %v", probeName, queries)
	}
	v.shutdown(t)

	t.Log("second boot: the same storage")
	v = m.boot(t, "second", m.tpmDir)
	got = v.expectAll(t, bootTimeout, bootFailure, reStatus, reExisting, reJoined, reEnrolled)
	if got[1][1] != created {
		t.Errorf("second boot found a data partition created %s, want the one created %s", got[1][1], created)
	}
	if got[2][1] != id {
		t.Errorf("second boot joined as node %s, want %s", got[2][1], id)
	}
	v.shutdown(t)

	t.Log("third boot: another TPM")
	v = m.boot(t, "wrong-tpm", filepath.Join(t.TempDir(), "other-tpm"))
	v.expectAll(t, bootTimeout, bootFailure,
		regexp.MustCompile(`The data partition cannot be mounted: the node's sealed configuration was sealed by a different TPM.*the data partition was left untouched`),
		regexp.MustCompile(`Node status: address `+regexp.QuoteMeta(nodeIP.String())+`, storage not mounted: the node's sealed configuration was sealed by a different TPM`))
	v.shutdown(t)
	if tr := v.Console().Transcript(); strings.Contains(tr, "Data partition ready") {
		t.Errorf("the node mounted its data partition with another TPM:\n%s", tr)
	}

	t.Log("fourth boot: the machine's TPM again")
	v = m.boot(t, "fourth", m.tpmDir)
	got = v.expectAll(t, bootTimeout, bootFailure, reStatus, reExisting)
	if got[1][1] != created {
		t.Errorf("after the boot with another TPM, the data partition was created %s, want %s", got[1][1], created)
	}
	v.shutdown(t)
}
