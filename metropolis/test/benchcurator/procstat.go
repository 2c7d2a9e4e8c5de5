package benchcurator

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// userHZ is the unit of the CPU times in /proc/<pid>/stat. The kernel
// reports them in USER_HZ, which is 100 on every architecture this runs on
// (it is only different on alpha and ia64).
const userHZ = 100

// procUsage is what the kernel accounts to a process at one moment.
type procUsage struct {
	// cpu is the user and system time of all the process's threads.
	cpu time.Duration
	// rss is the resident set size (VmRSS).
	rss uint64
	// peakRSS is the largest rss so far (VmHWM).
	peakRSS uint64
}

// readProcUsage reads the usage of process pid from /proc.
func readProcUsage(pid int) (procUsage, error) {
	var u procUsage
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return u, err
	}
	// The command name (field 2) is in parentheses and may contain spaces
	// and parentheses itself; the fields after the last ')' are fixed.
	end := bytes.LastIndexByte(stat, ')')
	if end < 0 {
		return u, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	fields := strings.Fields(string(stat[end+1:]))
	// fields[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(fields) < 13 {
		return u, fmt.Errorf("/proc/%d/stat: %d fields after the command name, want at least 13", pid, len(fields))
	}
	var ticks uint64
	for _, f := range fields[11:13] {
		v, err := strconv.ParseUint(f, 10, 64)
		if err != nil {
			return u, fmt.Errorf("/proc/%d/stat: CPU time %q: %w", pid, f, err)
		}
		ticks += v
	}
	u.cpu = time.Duration(ticks) * time.Second / userHZ

	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return u, err
	}
	for line := range strings.Lines(string(status)) {
		name, value, ok := strings.Cut(line, ":")
		if !ok || (name != "VmRSS" && name != "VmHWM") {
			continue
		}
		kb, ok := strings.CutSuffix(strings.TrimSpace(value), " kB")
		if !ok {
			return u, fmt.Errorf("/proc/%d/status: %s is %q, want a size in kB", pid, name, value)
		}
		v, err := strconv.ParseUint(kb, 10, 64)
		if err != nil {
			return u, fmt.Errorf("/proc/%d/status: %s: %w", pid, name, err)
		}
		if name == "VmRSS" {
			u.rss = v << 10
		} else {
			u.peakRSS = v << 10
		}
	}
	if u.rss == 0 || u.peakRSS == 0 {
		return u, fmt.Errorf("/proc/%d/status: no VmRSS or VmHWM", pid)
	}
	return u, nil
}

// resetPeakRSS resets the peak resident set size (VmHWM) of process pid to
// its current one.
func resetPeakRSS(pid int) error {
	// See proc(5), /proc/pid/clear_refs.
	if err := os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0); err != nil {
		return fmt.Errorf("resetting the peak RSS: %w", err)
	}
	return nil
}

// openFiles returns the number of files process pid has open.
func openFiles(pid int) (int, error) {
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return 0, err
	}
	return len(fds), nil
}

// rssSampleInterval is how often the RSS sampler looks at a process.
const rssSampleInterval = 500 * time.Millisecond

// rssSampler records the resident set size of a process over time, so that
// the steady RSS of a window can be told from the peak.
type rssSampler struct {
	pid  int
	stop chan struct{}
	done chan struct{}

	mu      sync.Mutex
	samples []rssSample
	err     error
}

type rssSample struct {
	at  time.Time
	rss uint64
}

func startRSSSampler(pid int) *rssSampler {
	s := &rssSampler{pid: pid, stop: make(chan struct{}), done: make(chan struct{})}
	go s.run()
	return s
}

func (s *rssSampler) run() {
	defer close(s.done)
	t := time.NewTicker(rssSampleInterval)
	defer t.Stop()
	for {
		u, err := readProcUsage(s.pid)
		s.mu.Lock()
		if err != nil {
			s.err = err
			s.mu.Unlock()
			return
		}
		s.samples = append(s.samples, rssSample{at: time.Now(), rss: u.rss})
		s.mu.Unlock()
		select {
		case <-t.C:
		case <-s.stop:
			return
		}
	}
}

// close stops sampling and returns why it stopped early, if it did.
func (s *rssSampler) close() error {
	close(s.stop)
	<-s.done
	return s.err
}

// mean returns the mean RSS of the samples taken in [from, to).
func (s *rssSampler) mean(from, to time.Time) uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	var sum, n uint64
	for _, x := range s.samples {
		if !x.at.Before(from) && x.at.Before(to) {
			sum += x.rss
			n++
		}
	}
	if n == 0 {
		return 0
	}
	return sum / n
}
