package benchcurator

import (
	"fmt"
	"io"
	"time"
)

// Targets at TargetNodes nodes, from the issue that asked for this
// benchmark.
const (
	TargetNodes        = 5000
	TargetHeartbeatP99 = 50 * time.Millisecond
	TargetGetNodes     = 500 * time.Millisecond
	TargetMemory       = 1 << 30
)

const rowFormat = "%-7s %6s  %-19s  %-9s  %-26s  %-7s  %-19s  %-7s  %s\n"

// WriteTableHeader writes the header of the table WriteTableRow writes
// rows of, with what its columns mean.
func WriteTableHeader(w io.Writer) {
	fmt.Fprintln(w, "heartbeat: round trip of heartbeats in the steady window. GetNodes: median of listing all nodes as owner.")
	fmt.Fprintln(w, "fan-out: one node's status change until each node's watch has it. CP: the control-plane process (all")
	fmt.Fprintln(w, "members' etcd and curator); CPU in % of one core over the window; RSS mean over the window / peak.")
	fmt.Fprintln(w, "client: the process simulating the nodes, on the same 2 cores. setup: registration + connection.")
	fmt.Fprintln(w)
	fmt.Fprintf(w, rowFormat, "members", "nodes", "heartbeat p50/p99", "GetNodes", "fan-out p50/p99/max", "CP CPU", "CP RSS steady/peak", "client", "setup")
}

// WriteTableRow writes one result as a row of the table, with a line of
// context below it.
func WriteTableRow(w io.Writer, r *Result) {
	fmt.Fprintf(w, rowFormat,
		fmt.Sprint(r.Members), fmt.Sprint(r.Nodes),
		formatDuration(r.Heartbeat.P50)+" / "+formatDuration(r.Heartbeat.P99),
		formatDuration(r.GetNodes.P50),
		formatDuration(r.FanOut.P50)+" / "+formatDuration(r.FanOut.P99)+" / "+formatDuration(r.FanOut.Max),
		fmt.Sprintf("%.0f%%", r.ControlPlane.CPUPercent),
		formatBytes(r.ControlPlane.SteadyRSS)+" / "+formatBytes(r.ControlPlane.PeakRSS),
		fmt.Sprintf("%.0f%%", r.Client.CPUPercent),
		fmt.Sprintf("%.0fs + %.0fs", r.RegisterSeconds, r.ConnectSeconds),
	)
	conns := "one connection per node"
	if r.ViaResolver {
		conns = "nodes through the resolver"
	}
	fmt.Fprintf(w, "        %s; leader %s; %d heartbeats; status change %s; CP %d goroutines, %d open files; client RSS %s / %s; load average %s",
		conns, r.Leader, r.Heartbeat.Count, formatDuration(r.StatusUpdate.P50), r.ControlPlane.Goroutines, r.ControlPlane.OpenFiles,
		formatBytes(r.Client.SteadyRSS), formatBytes(r.Client.PeakRSS), r.LoadAverage)
	if r.FanOutMissed > 0 {
		fmt.Fprintf(w, "; %d fan-out deliveries MISSED", r.FanOutMissed)
	}
	if r.StreamErrors > 0 {
		fmt.Fprintf(w, "; %d nodes lost a stream, first: %s", r.StreamErrors, r.FirstStreamError)
	}
	fmt.Fprintln(w)
}

// WriteTargets checks the results at TargetNodes nodes against the
// targets. It writes nothing if no result has that many nodes.
func WriteTargets(w io.Writer, results []*Result) {
	for _, r := range results {
		if r.Nodes != TargetNodes {
			continue
		}
		fmt.Fprintf(w, "targets at %d nodes, %d member(s): heartbeat p99 %s (< %s) %s; GetNodes %s (< %s) %s; control-plane peak RSS %s (< %s) %s\n",
			r.Nodes, r.Members,
			formatDuration(r.Heartbeat.P99), formatDuration(TargetHeartbeatP99), verdict(r.Heartbeat.P99 < TargetHeartbeatP99),
			formatDuration(r.GetNodes.P50), formatDuration(TargetGetNodes), verdict(r.GetNodes.P50 < TargetGetNodes),
			formatBytes(r.ControlPlane.PeakRSS), formatBytes(TargetMemory), verdict(r.ControlPlane.PeakRSS < TargetMemory),
		)
	}
}

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "MISSED"
}

func formatDuration(d time.Duration) string {
	switch {
	case d < 10*time.Millisecond:
		return fmt.Sprintf("%.2fms", millis(d))
	case d < time.Second:
		return fmt.Sprintf("%.0fms", millis(d))
	default:
		return fmt.Sprintf("%.1fs", d.Seconds())
	}
}

func formatBytes(b uint64) string {
	if b >= 1<<30 {
		return fmt.Sprintf("%.2fGiB", float64(b)/(1<<30))
	}
	return fmt.Sprintf("%.0fMiB", float64(b)/(1<<20))
}
