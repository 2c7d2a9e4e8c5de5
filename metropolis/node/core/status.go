package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"metropolis.dev/metropolis/node/core/network"
	timesvc "metropolis.dev/metropolis/node/core/time"
	"metropolis.dev/osbase/event"
	"metropolis.dev/osbase/supervisor"
)

// statusReporter logs a one-line summary of the node's state whenever it
// changes, for the console; and once, when the node first has both an
// address and its data partition, how long that took and how much memory
// the core uses.
type statusReporter struct {
	network event.Watchable[*network.Status]
	clock   event.Watchable[*timesvc.ClockStatus]
	storage event.Watchable[*storageStatus]
}

// nodeState is what the summary line is made of.
type nodeState struct {
	network *network.Status
	clock   *timesvc.ClockStatus
	storage *storageStatus
}

func (r *statusReporter) run(ctx context.Context) error {
	networkC := make(chan *network.Status)
	clockC := make(chan *timesvc.ClockStatus)
	storageC := make(chan *storageStatus)
	for name, pipe := range map[string]supervisor.Runnable{
		"network": event.Pipe(r.network, networkC),
		"clock":   event.Pipe(r.clock, clockC),
		"storage": event.Pipe(r.storage, storageC),
	} {
		if err := supervisor.Run(ctx, name, pipe); err != nil {
			return err
		}
	}
	supervisor.Signal(ctx, supervisor.SignalHealthy)

	log := supervisor.Logger(ctx)
	var s nodeState
	var last string
	var networkUp, storageUp, reported bool
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case s.network = <-networkC:
		case s.clock = <-clockC:
		case s.storage = <-storageC:
		}
		if line := s.summary(); line != last {
			log.Info(line)
			last = line
		}
		if !networkUp && s.network != nil && s.network.ExternalAddress != nil {
			networkUp = true
			log.Infof("Milestone: network up %s", sinceKernelStart())
		}
		if !storageUp && s.storage != nil && s.storage.Mounted {
			storageUp = true
			log.Infof("Milestone: storage mounted %s", sinceKernelStart())
		}
		if networkUp && storageUp && !reported {
			reported = true
			log.Infof("Memory: core %s, init (PID 1) %s", residentMemory("/proc/self/status"), residentMemory("/proc/1/status"))
		}
	}
}

// summary is the node's state in one line.
func (s *nodeState) summary() string {
	var parts []string
	switch {
	case s.network == nil || s.network.ExternalAddress == nil:
		parts = append(parts, "no address yet")
	default:
		parts = append(parts, "address "+s.network.ExternalAddress.String())
	}
	switch {
	case s.storage == nil:
		parts = append(parts, "storage not mounted yet")
	case s.storage.Mounted:
		parts = append(parts, fmt.Sprintf("storage mounted (%s)", securityName(s.storage.Security)))
	default:
		parts = append(parts, "storage not mounted: "+s.storage.Problem)
	}
	switch {
	case s.clock == nil:
		parts = append(parts, "time not synced yet")
	case s.clock.Synchronized:
		parts = append(parts, fmt.Sprintf("time synced with %s", s.clock.Server))
	default:
		parts = append(parts, "time not synced")
	}
	return "Node status: " + strings.Join(parts, ", ")
}

// sinceKernelStart says how long ago the kernel started.
func sinceKernelStart() string {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts); err != nil {
		return fmt.Sprintf("(time since kernel start unknown: %v)", err)
	}
	return fmt.Sprintf("%.2f s after the kernel started", time.Duration(ts.Nano()).Seconds())
}

// residentMemory describes the resident memory of a process from its
// /proc/PID/status file: all of it (VmRSS), and the part no other process
// shares (RssAnon), which is what running the process costs: the pages of
// the executable are shared between the core and PID 1.
func residentMemory(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Sprintf("unknown (%v)", err)
	}
	defer f.Close()
	fields := map[string]string{}
	s := bufio.NewScanner(f)
	for s.Scan() {
		k, v, ok := strings.Cut(s.Text(), ":")
		if ok {
			fields[k] = strings.TrimSpace(v)
		}
	}
	if fields["VmRSS"] == "" {
		return "unknown"
	}
	return fmt.Sprintf("VmRSS %s (RssAnon %s)", fields["VmRSS"], fields["RssAnon"])
}
