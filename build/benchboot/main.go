// Command benchboot measures the node image: how long build/mkimage takes,
// how large the UKI and the system image are, and how long the image takes to
// boot to the node core's banner under qemu, as the median of several boots,
// both with the kernel booted directly (no firmware) and the way a machine
// boots it (OVMF firmware loading the UKI from the ESP, with an swtpm TPM).
//
// Usage (make bench-boot):
//
//	go run ./build/benchboot [-runs 5] [-cpus 2] [-kernel-messages]
//
// Boots run one after another, so they do not compete for the CPUs; other
// load on the machine still shows in the figures, which it prints with the
// load average. Boot time is wall time from starting qemu to the banner line
// on the serial console, including qemu's and swtpm's start. Under TCG (no
// /dev/kvm) the figures are dominated by software emulation.
//
// The firmware boots are all of one machine, whose firmware variables and
// TPM persist from boot to boot as a real machine's do: the first boot
// also creates the firmware's boot options and manufactures the TPM, and is
// reported on its own as well. Each boot is split into phases by the
// console lines that end them: the firmware starting the UKI, stage-1
// starting (the end of the UKI's stub, the kernel's decompression and its
// initialisation), stage-1 starting the node core, and the core's banner.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"metropolis.dev/osbase/test/measure"
	"metropolis.dev/osbase/test/qemu"
)

// Targets from the issue that introduced the image.
const (
	targetUKIBytes = 20 << 20
	targetBoot     = 10 * time.Second
)

// bannerTimeout is how long one boot may take before it counts as failed.
const bannerTimeout = 3 * time.Minute

// summary is the part of mkimage's -summary output used here.
type summary struct {
	RootHash     string  `json:"root_hash"`
	UKIBytes     int64   `json:"uki_bytes"`
	SystemBytes  int64   `json:"system_bytes"`
	VerityBytes  int64   `json:"verity_bytes"`
	BuildSeconds float64 `json:"build_seconds"`
}

func main() {
	log.SetFlags(0)
	log.SetPrefix("benchboot: ")
	runs := flag.Int("runs", 5, "boots per boot path")
	cpus := flag.Int("cpus", 2, "virtual CPUs of the VMs")
	kernelMessages := flag.Bool("kernel-messages", false, "build the image with the kernel's informational messages on the console (loglevel=7), to time the loader apart from the kernel; the extra output slows the boot a little")
	flag.Parse()
	if err := run(*runs, *cpus, *kernelMessages); err != nil {
		log.Fatal(err)
	}
}

func run(runs, cpus int, kernelMessages bool) error {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "benchboot-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	img := filepath.Join(dir, "node.img")
	parts := filepath.Join(dir, "parts")
	start := time.Now()
	args := []string{"run", "./build/mkimage", "-out", img, "-summary", filepath.Join(dir, "summary.json"), "-parts", parts}
	if kernelMessages {
		args = append(args, "-cmdline", "loglevel=7")
	}
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("building the image: %w", err)
	}
	buildWall := time.Since(start)
	j, err := os.ReadFile(filepath.Join(dir, "summary.json"))
	if err != nil {
		return err
	}
	var s summary
	if err := json.Unmarshal(j, &s); err != nil {
		return err
	}
	cmdline, err := os.ReadFile(filepath.Join(parts, "cmdline-A.txt"))
	if err != nil {
		return err
	}

	machine := filepath.Join(dir, "machine")
	if err := os.Mkdir(machine, 0o700); err != nil {
		return err
	}
	paths := []struct {
		name    string
		devices []qemu.Device
	}{
		{"direct boot (kernel + initramfs, no firmware)", []qemu.Device{
			qemu.DirectBoot{
				Kernel:    filepath.Join(parts, "vmlinuz"),
				Initramfs: filepath.Join(parts, "initramfs.cpio.zst"),
				Cmdline:   string(cmdline),
			},
			qemu.Disk{Path: img, Overlay: true},
		}},
		{"OVMF + UKI from the ESP + swtpm", []qemu.Device{
			qemu.OVMF{Vars: filepath.Join(machine, "OVMF_VARS.fd")},
			qemu.TPM{StateDir: filepath.Join(machine, "tpm")},
			qemu.Disk{Path: img, Overlay: true},
		}},
	}
	results := make([][]boot, len(paths))
	for i, p := range paths {
		for r := 0; r < runs; r++ {
			b, err := bootToBanner(ctx, fmt.Sprintf("bench-%d-%d", i, r), cpus, s.RootHash, p.devices)
			if err != nil {
				return fmt.Errorf("%s, run %d: %w", p.name, r+1, err)
			}
			fmt.Fprintf(os.Stderr, "benchboot: %s, run %d: %.1f s (%s)\n", p.name, r+1, b.total().Seconds(), describePhases(b.durations()))
			results[i] = append(results[i], b)
		}
	}

	accel := "TCG (software emulation)"
	if qemu.KVMAvailable() {
		accel = "KVM"
	}
	fmt.Printf("\nnode image benchmark (%s, %d vCPUs, host load %s)\n", accel, cpus, measure.LoadAverage())
	if kernelMessages {
		fmt.Println("  (kernel messages on the console: loglevel=7 on the command line)")
	}
	fmt.Printf("  image build:         %.1f s wall (mkimage's own work: %.1f s)\n", buildWall.Seconds(), s.BuildSeconds)
	fmt.Printf("  UKI size:            %.1f MiB (target < %d MiB: %s)\n", float64(s.UKIBytes)/(1<<20), targetUKIBytes>>20, verdict(s.UKIBytes < targetUKIBytes))
	fmt.Printf("  system image:        %.1f MiB EROFS + %.2f MiB verity tree\n", float64(s.SystemBytes)/(1<<20), float64(s.VerityBytes)/(1<<20))
	for i, p := range paths {
		total, each := medians(results[i])
		line := fmt.Sprintf("  boot to banner:      %.1f s median of %d, %s", total.Seconds(), runs, p.name)
		if strings.HasPrefix(p.name, "OVMF") {
			line += fmt.Sprintf(" (target < %v: %s)", targetBoot, verdict(total < targetBoot))
		}
		fmt.Println(line)
		fmt.Printf("    phases (medians):  %s\n", describePhases(each))
		if strings.HasPrefix(p.name, "OVMF") {
			first := results[i][0]
			fmt.Printf("    first boot:        %.1f s (%s)\n", first.total().Seconds(), describePhases(first.durations()))
		}
	}
	return nil
}

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "MISSED"
}

// A phase of the boot ends with the first console line that contains its
// marker.
type phase struct {
	name, marker string
}

// phases are the boot's phases in order; the banner ends the last one.
// The firmware's phase exists only when booting through the firmware, and
// the loader's only with -kernel-messages, as the kernel's first message
// ends it: until then, the UKI's stub runs and the kernel decompresses
// itself (or, booted directly, qemu loads it).
var phases = [...]phase{
	{"firmware", "BdsDxe: starting"},
	{"loader", "] Linux version"},
	{"kernel", "stage1: booting"},
	{"stage-1", "stage1: METROPOLIS-SYSTEM-"},
	{"core", ""},
}

// Indices of the phases that describePhases merges when the first was
// not measured.
const (
	loaderPhase = 1
	kernelPhase = 2
)

// A boot is when each phase ended, counted from qemu's start; zero for a
// phase that did not happen.
type boot [len(phases)]time.Duration

func (b boot) total() time.Duration { return b[len(b)-1] }

// durations returns how long each phase took, zero for those that did not
// happen.
func (b boot) durations() [len(phases)]time.Duration {
	var d [len(phases)]time.Duration
	var last time.Duration
	for i, end := range b {
		if end != 0 {
			d[i] = end - last
			last = end
		}
	}
	return d
}

// describePhases names each phase that happened with its duration.
func describePhases(d [len(phases)]time.Duration) string {
	var parts []string
	for i, p := range phases {
		if d[i] == 0 {
			continue
		}
		name := p.name
		if i == kernelPhase && d[loaderPhase] == 0 {
			name = "loader and kernel"
		}
		parts = append(parts, fmt.Sprintf("%s %.1f s", name, d[i].Seconds()))
	}
	return strings.Join(parts, ", ")
}

// medians returns the median total boot time and the median duration of
// each phase.
func medians(boots []boot) (time.Duration, [len(phases)]time.Duration) {
	var totals []time.Duration
	var each [len(phases)][]time.Duration
	for _, b := range boots {
		totals = append(totals, b.total())
		for i, d := range b.durations() {
			each[i] = append(each[i], d)
		}
	}
	var m [len(phases)]time.Duration
	for i := range m {
		m[i] = measure.Median(each[i])
	}
	return measure.Median(totals), m
}

// bootToBanner starts a VM and returns when each phase ended, up to the
// core's banner that shows the image's root hash.
func bootToBanner(ctx context.Context, name string, cpus int, rootHash string, devices []qemu.Device) (boot, error) {
	var (
		mu    sync.Mutex
		ended boot
		next  int
	)
	start := time.Now()
	note := func(line string) {
		mu.Lock()
		defer mu.Unlock()
		for i := next; i < len(phases)-1; i++ {
			if strings.Contains(line, phases[i].marker) {
				ended[i] = time.Since(start)
				next = i + 1
				return
			}
		}
	}
	vm, err := qemu.Start(ctx, qemu.Options{Name: name, CPUs: cpus, MemoryMiB: 1024, ConsoleLog: note}, devices...)
	if err != nil {
		return boot{}, err
	}
	defer vm.Stop()
	ctx, cancel := context.WithTimeout(ctx, qemu.Timeout(bannerTimeout))
	defer cancel()
	banner := "dm-verity root hash " + rootHash
	line, err := vm.Console().ExpectFunc(ctx, "the banner or a failed boot", func(l string) bool {
		return strings.Contains(l, banner) || isBootFailure(l)
	})
	if err == nil && !strings.Contains(line, banner) {
		err = fmt.Errorf("boot failed: %s", line)
	}
	if err != nil {
		return boot{}, errors.Join(err, fmt.Errorf("console:\n%s", strings.Join(vm.Console().Tail(20), "\n")))
	}
	mu.Lock()
	defer mu.Unlock()
	ended[len(ended)-1] = time.Since(start)
	return ended, nil
}

// isBootFailure tells whether a console line says that the boot stopped.
func isBootFailure(line string) bool {
	return strings.Contains(line, "stage1: boot stopped") || strings.Contains(line, "Kernel panic")
}
