// Command benchboot measures the node image: how long build/mkimage takes,
// how large the UKI and the system image are, and how long the image takes to
// boot to the node core's banner under qemu, as the median of several boots,
// both with the kernel booted directly (no firmware) and the way a machine
// boots it (OVMF firmware loading the UKI from the ESP, with an swtpm TPM).
//
// Usage (make bench-boot):
//
//	go run ./build/benchboot [-runs 5] [-cpus 2]
//
// Boots run one after another, so they do not compete for the CPUs; other
// load on the machine still shows in the figures, which it prints with the
// load average. Boot time is wall time from starting qemu to the banner line
// on the serial console, including qemu's and swtpm's start. Under TCG (no
// /dev/kvm) the figures are dominated by software emulation.
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
	"slices"
	"strings"
	"time"

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
	flag.Parse()
	if err := run(*runs, *cpus); err != nil {
		log.Fatal(err)
	}
}

func run(runs, cpus int) error {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "benchboot-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	img := filepath.Join(dir, "node.img")
	parts := filepath.Join(dir, "parts")
	start := time.Now()
	cmd := exec.CommandContext(ctx, "go", "run", "./build/mkimage", "-out", img,
		"-summary", filepath.Join(dir, "summary.json"), "-parts", parts)
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
			qemu.OVMF{},
			qemu.TPM{},
			qemu.Disk{Path: img, Overlay: true},
		}},
	}
	medians := make([]time.Duration, len(paths))
	for i, p := range paths {
		var times []time.Duration
		for r := 0; r < runs; r++ {
			d, err := bootToBanner(ctx, fmt.Sprintf("bench-%d-%d", i, r), cpus, s.RootHash, p.devices)
			if err != nil {
				return fmt.Errorf("%s, run %d: %w", p.name, r+1, err)
			}
			fmt.Fprintf(os.Stderr, "benchboot: %s, run %d: %.1f s\n", p.name, r+1, d.Seconds())
			times = append(times, d)
		}
		slices.Sort(times)
		medians[i] = times[len(times)/2]
	}

	load, _ := os.ReadFile("/proc/loadavg")
	accel := "TCG (software emulation)"
	if qemu.KVMAvailable() {
		accel = "KVM"
	}
	fmt.Printf("\nnode image benchmark (%s, %d vCPUs, host load %s)\n", accel, cpus, strings.Join(strings.Fields(string(load))[:3], " "))
	fmt.Printf("  image build:         %.1f s wall (mkimage's own work: %.1f s)\n", buildWall.Seconds(), s.BuildSeconds)
	fmt.Printf("  UKI size:            %.1f MiB (target < %d MiB: %s)\n", float64(s.UKIBytes)/(1<<20), targetUKIBytes>>20, verdict(s.UKIBytes < targetUKIBytes))
	fmt.Printf("  system image:        %.1f MiB EROFS + %.2f MiB verity tree\n", float64(s.SystemBytes)/(1<<20), float64(s.VerityBytes)/(1<<20))
	for i, p := range paths {
		line := fmt.Sprintf("  boot to banner:      %.1f s median of %d, %s", medians[i].Seconds(), runs, p.name)
		if strings.HasPrefix(p.name, "OVMF") {
			line += fmt.Sprintf(" (target < %v: %s)", targetBoot, verdict(medians[i] < targetBoot))
		}
		fmt.Println(line)
	}
	return nil
}

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "MISSED"
}

// bootToBanner starts a VM and returns the time until the core's banner
// shows the image's root hash.
func bootToBanner(ctx context.Context, name string, cpus int, rootHash string, devices []qemu.Device) (time.Duration, error) {
	start := time.Now()
	vm, err := qemu.Start(ctx, qemu.Options{Name: name, CPUs: cpus, MemoryMiB: 1024}, devices...)
	if err != nil {
		return 0, err
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
		return 0, errors.Join(err, fmt.Errorf("console:\n%s", strings.Join(vm.Console().Tail(20), "\n")))
	}
	return time.Since(start), nil
}

// isBootFailure tells whether a console line says that the boot stopped.
func isBootFailure(line string) bool {
	return strings.Contains(line, "stage1: boot stopped") || strings.Contains(line, "Kernel panic")
}
