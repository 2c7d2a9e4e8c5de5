package benchcurator

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"metropolis.dev/metropolis/node/core/curator"
	ipb "metropolis.dev/metropolis/node/core/curator/proto/api"
	apb "metropolis.dev/metropolis/proto/api"
	"metropolis.dev/osbase/test/measure"
)

// Config is one run of the benchmark: one control plane, one number of
// simulated nodes.
type Config struct {
	// Members is the number of curators (each with its etcd member) in the
	// control plane, 1 to curatortest.MaxCurators.
	Members int
	// Nodes is the number of simulated nodes.
	Nodes int
	// Window is how long heartbeats and resource use are measured once all
	// nodes are up.
	Window time.Duration
	// ViaResolver makes every node connect the way nodes do, through the
	// metropolis resolver, which follows the leader with a connection to
	// every curator besides the one to the leader. Otherwise each node
	// has a single connection, to the leader. The resolver needs
	// Nodes*(Members+1) open files in each process.
	ViaResolver bool
	// ControlPlane returns the command that runs the control plane: a
	// process that calls ServeControlPlane with dir and members and then
	// runs until its standard input closes.
	ControlPlane func(dir string, members int) *exec.Cmd
	// ProfileDir, if set, receives profiles of the control plane, named
	// after members and nodes: CPU over the steady window (cpu-) and over
	// the status changes (cpu-fanout-), and the heap and goroutines after
	// the measurements.
	ProfileDir string
	// Progress receives what the run is doing, for a person to follow.
	Progress io.Writer
}

// Result is what one run measured.
type Result struct {
	Members     int  `json:"members"`
	Nodes       int  `json:"nodes"`
	ViaResolver bool `json:"via_resolver"`
	// WindowSeconds is the length of the steady-state window.
	WindowSeconds float64 `json:"window_seconds"`
	// LoadAverage of the machine when the run started.
	LoadAverage string `json:"load_average"`
	// Leader is the curator (index and host) that led throughout, or says
	// that leadership changed during the run.
	Leader string `json:"leader"`

	// RegisterSeconds is how long registering, approving and committing
	// all nodes took; ConnectSeconds how long connecting them, reporting
	// their status, opening their watches (with the initial state of all
	// nodes) and starting their heartbeats took.
	RegisterSeconds float64 `json:"register_seconds"`
	ConnectSeconds  float64 `json:"connect_seconds"`

	// Heartbeat is the round trip of heartbeats sent in the window.
	Heartbeat Latency `json:"heartbeat"`
	// GetNodes is how long listing all nodes as the owner took, over
	// several calls; GetNodesCount how many nodes each returned.
	GetNodes      Latency `json:"get_nodes"`
	GetNodesCount int     `json:"get_nodes_count"`
	// FanOut is, for each change of one node's status and each watcher,
	// the time from sending the change to the watcher receiving it.
	FanOut Latency `json:"fan_out"`
	// FanOutChanges is the number of changes; FanOutMissed how many
	// (change, watcher) pairs were not received within fanOutTimeout.
	FanOutChanges int `json:"fan_out_changes"`
	FanOutMissed  int `json:"fan_out_missed"`
	// StatusUpdate is the latency of those status changes themselves.
	StatusUpdate Latency `json:"status_update"`

	// ControlPlane and Client are the resources used by the control-plane
	// process (all members) and by the process simulating the nodes.
	ControlPlane Resources `json:"control_plane"`
	Client       Resources `json:"client"`

	// StreamErrors counts nodes whose heartbeat or watch stream broke;
	// FirstStreamError says why the first did.
	StreamErrors     int    `json:"stream_errors"`
	FirstStreamError string `json:"first_stream_error,omitempty"`
}

// Resources is what a process used.
type Resources struct {
	// CPUPercent is CPU time over the window, in percent of one core.
	CPUPercent float64 `json:"cpu_percent"`
	// SteadyRSS is the mean resident set size over the window.
	SteadyRSS uint64 `json:"steady_rss_bytes"`
	// PeakRSS is the largest resident set size of the whole run (VmHWM),
	// including setup.
	PeakRSS uint64 `json:"peak_rss_bytes"`
	// Goroutines and OpenFiles (mostly connections) at the end of the
	// window.
	Goroutines int `json:"goroutines"`
	OpenFiles  int `json:"open_files"`
}

const (
	// setupParallelism bounds how many nodes register or connect at once.
	setupParallelism = 32
	// getNodesCalls is how many times all nodes are listed.
	getNodesCalls = 5
	// fanOutChanges is how many status changes are watched for.
	fanOutChanges = 5
	// fanOutSpacing is the time between the starts of two status changes,
	// unless a change takes longer to reach all watchers.
	fanOutSpacing = 2 * time.Second
	// fanOutTimeout bounds how long one change may take to reach all
	// watchers.
	fanOutTimeout = time.Minute
	// firstHeartbeatTimeout bounds how long after their streams open all
	// nodes may take to have a first heartbeat answered.
	firstHeartbeatTimeout = 2 * time.Minute
)

// Run runs the benchmark once: it starts a control plane, brings up the
// simulated nodes, measures, and stops everything again. The client's
// figures are those of the whole calling process, so they are only this
// run's if no other run overlaps it.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if cfg.Members < 1 || cfg.Nodes < 1 || cfg.Window <= 0 {
		return nil, fmt.Errorf("invalid configuration: %d members, %d nodes, window %v; all must be positive", cfg.Members, cfg.Nodes, cfg.Window)
	}
	if cfg.Progress == nil {
		cfg.Progress = io.Discard
	}
	// Every node holds a connection to the leader, and through the
	// resolver one to each curator, open on both ends.
	conns := cfg.Nodes
	if cfg.ViaResolver {
		conns *= cfg.Members + 1
	}
	if err := raiseFileLimit(uint64(conns + 4096)); err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "benchcurator-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)

	// The client's figures are of this run alone, not of earlier runs in
	// the same process.
	debug.FreeOSMemory()
	if err := resetPeakRSS(os.Getpid()); err != nil {
		return nil, err
	}
	res := &Result{Members: cfg.Members, Nodes: cfg.Nodes, ViaResolver: cfg.ViaResolver, WindowSeconds: cfg.Window.Seconds(), LoadAverage: measure.LoadAverage()}
	r := &run{cfg: cfg, res: res}
	r.logf("starting a control plane of %d member(s)", cfg.Members)
	cp, err := startControlPlane(ctx, cfg.ControlPlane(dir, cfg.Members), dir, cfg.ViaResolver)
	if err != nil {
		return nil, err
	}
	r.cp = cp
	err = r.measure(ctx)
	if stopErr := cp.stop(); err == nil {
		err = stopErr
	}
	if err != nil {
		return nil, err
	}
	return res, nil
}

// run is the state of one run.
type run struct {
	cfg   Config
	res   *Result
	cp    *controlPlane
	nodes []*simNode
}

func (r *run) logf(format string, args ...any) {
	fmt.Fprintf(r.cfg.Progress, "benchcurator: %d member(s), %d nodes: %s\n", r.cfg.Members, r.cfg.Nodes, fmt.Sprintf(format, args...))
}

// measure brings up the nodes, measures, and records the results in r.res.
func (r *run) measure(ctx context.Context) error {
	cpSampler := startRSSSampler(r.cp.pid())
	defer cpSampler.close()
	selfSampler := startRSSSampler(os.Getpid())
	defer selfSampler.close()

	leaderBefore, err := r.leader(ctx)
	if err != nil {
		return err
	}
	// Nodes keep their streams until the measurements are done.
	nodesCtx, stopNodes := context.WithCancel(ctx)
	var streams sync.WaitGroup
	defer func() {
		stopNodes()
		streams.Wait()
		for _, n := range r.nodes {
			if n.conn != nil {
				n.conn.Close()
			}
		}
	}()
	fanOut, err := r.setUp(ctx, nodesCtx, &streams)
	if err != nil {
		return err
	}

	if err := r.measureWindow(ctx, cpSampler, selfSampler); err != nil {
		return err
	}
	if err := r.measureGetNodes(ctx); err != nil {
		return err
	}
	if err := r.measureFanOut(ctx, fanOut); err != nil {
		return err
	}
	if r.cfg.ProfileDir != "" {
		for _, kind := range []string{"heap", "goroutine"} {
			if err := r.cp.fetchProfile(ctx, kind, r.profilePath(kind)); err != nil {
				return fmt.Errorf("%s profile: %w", kind, err)
			}
		}
	}

	leaderAfter, err := r.leader(ctx)
	if err != nil {
		return err
	}
	r.res.Leader = leaderBefore
	if leaderAfter != leaderBefore {
		r.res.Leader = fmt.Sprintf("changed from %s to %s", leaderBefore, leaderAfter)
	}
	cpUsage, err := readProcUsage(r.cp.pid())
	if err != nil {
		return err
	}
	r.res.ControlPlane.PeakRSS = cpUsage.peakRSS
	selfUsage, err := readProcUsage(os.Getpid())
	if err != nil {
		return err
	}
	r.res.Client.PeakRSS = selfUsage.peakRSS
	r.res.StreamErrors, r.res.FirstStreamError = r.streamErrors()
	return nil
}

// setUp creates the nodes and brings them up: registered, connected,
// watching and heartbeating, the streams running under nodesCtx and
// counted in streams. It returns what the watches report status changes
// to.
func (r *run) setUp(ctx, nodesCtx context.Context, streams *sync.WaitGroup) (*fanOut, error) {
	r.nodes = make([]*simNode, r.cfg.Nodes)
	for i := range r.nodes {
		var err error
		if r.nodes[i], err = newSimNode(i); err != nil {
			return nil, err
		}
	}
	start := time.Now()
	if err := r.forEachNode(ctx, "registered", func(ctx context.Context, n *simNode) error { return n.register(ctx, r.cp) }); err != nil {
		return nil, err
	}
	r.res.RegisterSeconds = time.Since(start).Seconds()

	// Status first and watches after, so that every watch starts with the
	// state of all nodes and no watcher sees the cluster being set up.
	start = time.Now()
	if err := r.forEachNode(ctx, "connected and reported status", func(ctx context.Context, n *simNode) error { return n.connect(ctx, r.cp) }); err != nil {
		return nil, err
	}
	fanOut := &fanOut{marker: r.nodes[0].id}
	if err := r.forEachNode(ctx, "watching", func(ctx context.Context, n *simNode) error {
		if err := n.watch(nodesCtx, fanOut.seen, streams); err != nil {
			return err
		}
		if want := r.cfg.Nodes + r.cfg.Members; n.backlog != want {
			return fmt.Errorf("watch started with %d nodes, want %d", n.backlog, want)
		}
		return nil
	}); err != nil {
		return nil, err
	}
	// Heartbeats are spread evenly over the interval, as nodes that came
	// up at random times would send them.
	interval := curator.HeartbeatInterval
	var answered atomic.Int64
	for i, n := range r.nodes {
		offset := time.Duration(i) * interval / time.Duration(len(r.nodes))
		streams.Add(1)
		go func() {
			defer streams.Done()
			n.heartbeat(nodesCtx, offset, interval, &answered)
		}()
	}
	if err := r.awaitFirstHeartbeats(ctx, &answered); err != nil {
		return nil, err
	}
	r.res.ConnectSeconds = time.Since(start).Seconds()
	return fanOut, nil
}

// streamErrors returns how many nodes lost a stream, and why the first
// did.
func (r *run) streamErrors() (int, string) {
	count, first := 0, ""
	for _, n := range r.nodes {
		n.mu.Lock()
		if n.streamErr != nil {
			if count == 0 {
				first = fmt.Sprintf("node %d: %v", n.index, n.streamErr)
			}
			count++
		}
		n.mu.Unlock()
	}
	return count, first
}

// forEachNode calls f for every node, setupParallelism at a time, and
// reports progress as done. It returns the first error.
func (r *run) forEachNode(ctx context.Context, done string, f func(context.Context, *simNode) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var (
		next, finished atomic.Int64
		wg             sync.WaitGroup
	)
	start := time.Now()
	for range min(setupParallelism, len(r.nodes)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= len(r.nodes) || ctx.Err() != nil {
					return
				}
				if err := f(ctx, r.nodes[i]); err != nil {
					cancel(fmt.Errorf("node %d (%s): %w", i, r.nodes[i].id, err))
					return
				}
				finished.Add(1)
			}
		}()
	}
	allDone := make(chan struct{})
	go func() {
		wg.Wait()
		close(allDone)
	}()
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-allDone:
			if err := context.Cause(ctx); err != nil {
				return err
			}
			r.logf("%s %d nodes in %.1fs", done, len(r.nodes), time.Since(start).Seconds())
			return nil
		case <-t.C:
			n := finished.Load()
			r.logf("%s %d/%d (%.0f/s)", done, n, len(r.nodes), float64(n)/time.Since(start).Seconds())
		}
	}
}

// awaitFirstHeartbeats waits until every node's first heartbeat has been
// answered.
func (r *run) awaitFirstHeartbeats(ctx context.Context, answered *atomic.Int64) error {
	deadline := time.Now().Add(firstHeartbeatTimeout)
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for answered.Load() < int64(len(r.nodes)) {
		if n, first := r.streamErrors(); n > 0 {
			return fmt.Errorf("%d nodes lost a stream before their first heartbeat, first %s", n, first)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("only %d of %d nodes had a heartbeat answered within %v", answered.Load(), len(r.nodes), firstHeartbeatTimeout)
		}
		select {
		case <-t.C:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	r.logf("all nodes heartbeating")
	return nil
}

// measureWindow measures heartbeats and resource use while nothing but
// heartbeats happens.
func (r *run) measureWindow(ctx context.Context, cpSampler, selfSampler *rssSampler) error {
	r.logf("measuring a steady window of %v", r.cfg.Window)
	var profileErr chan error
	if r.cfg.ProfileDir != "" {
		profileErr = r.profileCPU(ctx, r.cfg.Window, "cpu")
	}
	cpBefore, err := readProcUsage(r.cp.pid())
	if err != nil {
		return err
	}
	selfBefore, err := readProcUsage(os.Getpid())
	if err != nil {
		return err
	}
	from := time.Now()
	select {
	case <-time.After(r.cfg.Window):
	case <-ctx.Done():
		return ctx.Err()
	}
	to := time.Now()
	cpAfter, err := readProcUsage(r.cp.pid())
	if err != nil {
		return err
	}
	selfAfter, err := readProcUsage(os.Getpid())
	if err != nil {
		return err
	}
	if profileErr != nil {
		if err := <-profileErr; err != nil {
			return fmt.Errorf("CPU profile: %w", err)
		}
	}
	elapsed := to.Sub(from)
	r.res.ControlPlane.CPUPercent = 100 * float64(cpAfter.cpu-cpBefore.cpu) / float64(elapsed)
	r.res.Client.CPUPercent = 100 * float64(selfAfter.cpu-selfBefore.cpu) / float64(elapsed)
	r.res.ControlPlane.SteadyRSS = cpSampler.mean(from, to)
	r.res.Client.SteadyRSS = selfSampler.mean(from, to)
	if r.res.ControlPlane.Goroutines, err = r.cp.goroutines(ctx); err != nil {
		return err
	}
	r.res.Client.Goroutines = runtime.NumGoroutine()
	if r.res.ControlPlane.OpenFiles, err = openFiles(r.cp.pid()); err != nil {
		return err
	}
	if r.res.Client.OpenFiles, err = openFiles(os.Getpid()); err != nil {
		return err
	}

	var rtts []time.Duration
	for _, n := range r.nodes {
		n.mu.Lock()
		for _, s := range n.heartbeats {
			if !s.sent.Before(from) && s.sent.Before(to) {
				rtts = append(rtts, s.rtt)
			}
		}
		n.mu.Unlock()
	}
	r.res.Heartbeat = summarize(rtts)
	return nil
}

// measureGetNodes lists all nodes as the owner, getNodesCalls times.
func (r *run) measureGetNodes(ctx context.Context) error {
	mgmt := apb.NewManagementClient(r.cp.ownerConn)
	var took []time.Duration
	for range getNodesCalls {
		count := 0
		start := time.Now()
		err := retryUnavailable(ctx, func(ctx context.Context) error {
			stream, err := mgmt.GetNodes(ctx, &apb.GetNodesRequest{})
			if err != nil {
				return err
			}
			count = 0
			for {
				_, err := stream.Recv()
				if errors.Is(err, io.EOF) {
					return nil
				}
				if err != nil {
					return err
				}
				count++
			}
		})
		if err != nil {
			return fmt.Errorf("listing nodes: %w", err)
		}
		took = append(took, time.Since(start))
		if want := r.cfg.Nodes + r.cfg.Members; count != want {
			return fmt.Errorf("listing nodes returned %d nodes, want %d", count, want)
		}
		r.res.GetNodesCount = count
	}
	r.res.GetNodes = summarize(took)
	r.logf("listed all nodes %d times, median %v", getNodesCalls, r.res.GetNodes.P50)
	return nil
}

// measureFanOut changes the status of one node fanOutChanges times, one
// change every fanOutSpacing unless the previous one takes longer to reach
// everybody, and measures when each watcher sees each change.
func (r *run) measureFanOut(ctx context.Context, f *fanOut) error {
	var profileErr chan error
	if r.cfg.ProfileDir != "" {
		profileErr = r.profileCPU(ctx, fanOutChanges*fanOutSpacing, "cpu-fanout")
	}
	marker := r.nodes[0]
	var delays, updates []time.Duration
	start := time.Now()
	for change := range fanOutChanges {
		select {
		case <-time.After(time.Until(start.Add(time.Duration(change) * fanOutSpacing))):
		case <-ctx.Done():
			return ctx.Err()
		}
		// Addresses from the end of the benchmark network, which no node
		// has, so that each change is told apart from all others.
		round := newFanOutRound(nodeAddress(1<<17-1-change), len(r.nodes))
		round.start = time.Now()
		f.round.Store(round)
		if err := marker.updateStatus(ctx, round.address); err != nil {
			return fmt.Errorf("changing the status of node %s: %w", marker.id, err)
		}
		updates = append(updates, time.Since(round.start))
		select {
		case <-round.done:
		case <-time.After(fanOutTimeout):
		case <-ctx.Done():
			return ctx.Err()
		}
		f.round.Store(nil)
		for i := range round.seen {
			if d := round.seen[i].Load(); d > 0 {
				delays = append(delays, time.Duration(d))
			} else {
				r.res.FanOutMissed++
			}
		}
	}
	if profileErr != nil {
		if err := <-profileErr; err != nil {
			return fmt.Errorf("CPU profile of the fan-out: %w", err)
		}
	}
	r.res.FanOut = summarize(delays)
	r.res.FanOutChanges = fanOutChanges
	r.res.StatusUpdate = summarize(updates)
	r.logf("%d status changes reached all watchers: p99 %v, %d missed", fanOutChanges, r.res.FanOut.P99, r.res.FanOutMissed)
	return nil
}

// fanOut recognizes, in what watchers receive, the status change of its
// marker node that the current round waits for.
type fanOut struct {
	marker string
	round  atomic.Pointer[fanOutRound]
}

// fanOutRound is one status change of the marker node and who has seen it.
type fanOutRound struct {
	// address is what the marker's external address changes to.
	address string
	// start is when the change was sent; set before the round is
	// published to watchers.
	start time.Time
	// seen are the delays (nanoseconds, at least 1) after which each
	// watcher saw the change; zero for those that have not.
	seen      []atomic.Int64
	remaining atomic.Int64
	done      chan struct{}
}

func newFanOutRound(address string, watchers int) *fanOutRound {
	r := &fanOutRound{address: address, seen: make([]atomic.Int64, watchers), done: make(chan struct{})}
	r.remaining.Store(int64(watchers))
	return r
}

// seen is called by watcher with every event it receives, at the time it
// received it.
func (f *fanOut) seen(watcher int, ev *ipb.WatchEvent, at time.Time) {
	r := f.round.Load()
	if r == nil {
		return
	}
	for _, n := range ev.Nodes {
		if n.Id != f.marker || n.Status.GetExternalAddress() != r.address {
			continue
		}
		delay := max(int64(at.Sub(r.start)), 1)
		if r.seen[watcher].CompareAndSwap(0, delay) && r.remaining.Add(-1) == 0 {
			close(r.done)
		}
	}
}

// leader returns the curator leading now, as "index (host)".
func (r *run) leader(ctx context.Context) (string, error) {
	res, err := r.cp.currentLeader(ctx)
	if err != nil {
		return "", err
	}
	for i, host := range r.cp.handoff.Curators {
		if host == res.LeaderHost {
			return fmt.Sprintf("%d (%s)", i, host), nil
		}
	}
	return "", fmt.Errorf("leader %s at %s is none of the curators %v", res.LeaderNodeId, res.LeaderHost, r.cp.handoff.Curators)
}

// profileCPU profiles the control plane's CPU for d, from now, into the
// profile called name. The returned channel says how that went.
func (r *run) profileCPU(ctx context.Context, d time.Duration, name string) chan error {
	done := make(chan error, 1)
	path := fmt.Sprintf("profile?seconds=%d", max(int(d.Seconds()), 1))
	go func() { done <- r.cp.fetchProfile(ctx, path, r.profilePath(name)) }()
	return done
}

// profilePath is where a profile of kind goes.
func (r *run) profilePath(kind string) string {
	return filepath.Join(r.cfg.ProfileDir, fmt.Sprintf("%s-%dm-%dn.prof", kind, r.cfg.Members, r.cfg.Nodes))
}

// raiseFileLimit makes sure this process, and the control plane it starts,
// may open at least want files.
func raiseFileLimit(want uint64) error {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return fmt.Errorf("reading RLIMIT_NOFILE: %w", err)
	}
	if lim.Cur >= want {
		return nil
	}
	hard := lim.Max
	lim.Cur = want
	lim.Max = max(lim.Max, want)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return fmt.Errorf("this many connections need %d open files, over the hard limit of %d that raising needs CAP_SYS_RESOURCE for: %w", want, hard, err)
	}
	return nil
}
