package launch

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	apb "metropolis.dev/metropolis/proto/api"
	"metropolis.dev/osbase/test/qemu"
)

// ParametersFwCfgName is the fw_cfg item the node reads its NodeParameters
// from on its first boot.
const ParametersFwCfgName = "opt/metropolis/parameters.pb"

// machine is one node's virtual machine: the files that make it the same
// machine across restarts (disk, firmware variables, TPM state, parameters),
// its place on the switch, and the VM while it runs.
type machine struct {
	index int
	// dir holds the machine's files and is the VM's directory.
	dir    string
	disk   string
	vars   string
	tpmDir string
	params string
	mac    net.HardwareAddr
	// socket is the machine's port on the switch.
	socket string
	// console receives the console's lines.
	console func(line string)
	// logFile, if not nil, is the file console writes to.
	logFile *bufio.Writer
	logOS   *os.File

	mu sync.Mutex
	vm *qemu.VM
	// started is when vm was started.
	started time.Time
	boots   int
}

// nodeMAC returns the MAC address of node i: locally administered, unicast
// and fixed, so that the switch's DHCP server gives a restarted node the
// address it had.
func nodeMAC(i int) net.HardwareAddr {
	return net.HardwareAddr{0x02, 0x6d, 0x74, 0x72, byte(i >> 8), byte(i)}
}

// newMachine creates the files of node i's machine below launchDir: a disk
// of diskBytes that is a copy-on-write overlay of image, and the directories
// the firmware variables and the TPM's state go into when it first starts.
func newMachine(ctx context.Context, launchDir string, i int, image string, diskBytes int64) (*machine, error) {
	dir := filepath.Join(launchDir, "node-"+strconv.Itoa(i))
	if err := os.Mkdir(dir, 0o755); err != nil {
		return nil, fmt.Errorf("creating node %d's directory: %w", i, err)
	}
	m := &machine{
		index:  i,
		dir:    dir,
		disk:   filepath.Join(dir, "disk.qcow2"),
		vars:   filepath.Join(dir, "OVMF_VARS.fd"),
		tpmDir: filepath.Join(dir, "tpm"),
		params: filepath.Join(dir, "parameters.pb"),
		mac:    nodeMAC(i),
	}
	image, err := filepath.Abs(image)
	if err != nil {
		return nil, err
	}
	// qemu.Disk's own overlay is created anew on every start; this one
	// must outlive restarts, and be larger than the image.
	out, err := exec.CommandContext(ctx, "qemu-img", "create", "-q", "-f", "qcow2",
		"-b", image, "-F", "raw", m.disk, strconv.FormatInt(diskBytes, 10)).CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("creating node %d's disk: qemu-img: %w: %s", i, err, strings.TrimSpace(string(out)))
	}
	return m, nil
}

// setParameters writes the parameters the node finds in fw_cfg.
func (m *machine) setParameters(p *apb.NodeParameters) error {
	data, err := proto.Marshal(p)
	if err != nil {
		return fmt.Errorf("encoding node %d's parameters: %w", m.index, err)
	}
	if err := os.WriteFile(m.params, data, 0o600); err != nil {
		return fmt.Errorf("writing node %d's parameters: %w", m.index, err)
	}
	return nil
}

// logToFile makes the console go to path, appending.
func (m *machine) logToFile(path string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("opening node %d's console log: %w", m.index, err)
	}
	m.logOS = f
	m.logFile = bufio.NewWriter(f)
	m.console = func(line string) {
		m.logFile.WriteString(line)
		m.logFile.WriteByte('\n')
		// Whoever reads the log while the node runs wants to see the
		// latest line; lines are few enough to flush each.
		m.logFile.Flush()
	}
	return nil
}

// start starts the machine's VM, which must not be running. The VM lives
// until stop or until ctx is done.
func (m *machine) start(ctx context.Context, opts NodeOptions) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.vm != nil {
		select {
		case <-m.vm.Done():
		default:
			return fmt.Errorf("node %d is already running", m.index)
		}
		m.vm.Stop()
	}
	if _, err := os.Stat(m.params); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("node %d has no parameters yet", m.index)
		}
		return err
	}
	m.boots++
	if m.logFile != nil {
		fmt.Fprintf(m.logFile, "=== launch: boot %d of node %d at %s ===\n", m.boots, m.index, time.Now().Format(time.RFC3339))
		m.logFile.Flush()
	}
	vm, err := qemu.Start(ctx, qemu.Options{
		Name:        "node-" + strconv.Itoa(m.index),
		MemoryMiB:   opts.MemoryMiB,
		CPUs:        opts.CPUs,
		Dir:         m.dir,
		AllowReboot: opts.AllowReboot,
		ConsoleLog:  m.console,
	},
		qemu.OVMF{Vars: m.vars},
		qemu.TPM{StateDir: m.tpmDir},
		qemu.Disk{Path: m.disk, Format: "qcow2"},
		qemu.StreamNetwork{SocketPath: m.socket, MAC: m.mac},
		qemu.RNG{},
		qemu.FwCfg{Name: ParametersFwCfgName, Path: m.params},
	)
	if err != nil {
		return fmt.Errorf("starting node %d: %w", m.index, err)
	}
	m.vm = vm
	m.started = time.Now()
	return nil
}

// stop powers the machine off, as pulling the plug does, and waits until
// its VM has ended. Stopping a stopped machine does nothing.
func (m *machine) stop() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.vm == nil {
		return nil
	}
	err := m.vm.Stop()
	m.vm = nil
	return err
}

// running returns the VM if it runs.
func (m *machine) running() *qemu.VM {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.vm
}

// startedAt returns when the VM was last started.
func (m *machine) startedAt() time.Time {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.started
}

// checkAlive returns an error if the machine's VM was started but has
// ended, saying how, with the console's last lines.
func (m *machine) checkAlive() error {
	vm := m.running()
	if vm == nil {
		return fmt.Errorf("node %d is not running", m.index)
	}
	select {
	case <-vm.Done():
	default:
		return nil
	}
	how := "qemu exited"
	if err := vm.Wait(); err != nil {
		how = err.Error()
	}
	return fmt.Errorf("node %d's VM ended (%s)\n%s", m.index, how, consoleTail(vm, tailLines))
}

// tailLines is the number of console lines errors show per node.
const tailLines = 25

// consoleTail describes the last n lines of vm's console.
func consoleTail(vm *qemu.VM, n int) string {
	tail := vm.Console().Tail(n)
	if len(tail) == 0 {
		return "its console is empty"
	}
	return fmt.Sprintf("last %d console lines of %s:\n\t%s", len(tail), filepath.Base(vm.Dir()), strings.Join(tail, "\n\t"))
}

// closeLog flushes and closes the console log file, if any.
func (m *machine) closeLog() error {
	if m.logOS == nil {
		return nil
	}
	m.logFile.Flush()
	err := m.logOS.Close()
	m.logOS = nil
	return err
}

// address returns the address the switch leased to the machine, if any.
func (m *machine) address(leases map[string]netip.Addr) (netip.Addr, bool) {
	a, ok := leases[m.mac.String()]
	return a, ok
}
