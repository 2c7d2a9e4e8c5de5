package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/encoding/protojson"

	"metropolis.dev/metropolis/cli/metroctl/core"
	apb "metropolis.dev/metropolis/proto/api"
	cpb "metropolis.dev/metropolis/proto/common"
	"metropolis.dev/osbase/logtree"
	lpb "metropolis.dev/osbase/logtree/proto"
)

// dialNode connects to the NodeManagement service of the node id, at the
// address the cluster knows for it.
func (e *env) dialNode(ctx context.Context, s *session, id string) (*grpc.ClientConn, *apb.Node, error) {
	n, err := core.GetNode(ctx, s.mgmt, id)
	if err != nil {
		return nil, nil, err
	}
	conn, err := s.cluster.DialNode(s.owner, s.ca, n.Id, n.Status.GetExternalAddress())
	if err != nil {
		return nil, nil, err
	}
	return conn, n, nil
}

// withNodeManagement connects to the cluster, then to the NodeManagement
// service of the node id, and calls f with that node and a client of its
// service, closing both connections once f returns.
func (e *env) withNodeManagement(ctx context.Context, id string, f func(n *apb.Node, nm apb.NodeManagementClient) error) error {
	s, err := e.connect(ctx)
	if err != nil {
		return err
	}
	defer s.Close()
	conn, n, err := e.dialNode(ctx, s, id)
	if err != nil {
		return err
	}
	defer conn.Close()
	return f(n, apb.NewNodeManagementClient(conn))
}

// logsOptions are the flags of 'node logs'.
type logsOptions struct {
	dn          string
	exact       bool
	follow      bool
	backlog     int64
	minSeverity string
	onlyRaw     bool
	onlyLeveled bool
	concise     bool
}

// request returns the Logs request the options ask for.
func (o *logsOptions) request() (*apb.GetLogsRequest, error) {
	req := &apb.GetLogsRequest{Dn: o.dn}
	switch {
	case o.backlog == -1:
		req.BacklogMode = apb.GetLogsRequest_BACKLOG_MODE_ALL
	case o.backlog == 0:
		req.BacklogMode = apb.GetLogsRequest_BACKLOG_MODE_DISABLE
	case o.backlog > 0:
		req.BacklogMode = apb.GetLogsRequest_BACKLOG_MODE_COUNT
		req.BacklogCount = o.backlog
	default:
		return nil, fmt.Errorf("--backlog %d: want -1 (all), 0 (none) or a number of entries", o.backlog)
	}
	req.StreamMode = apb.GetLogsRequest_STREAM_MODE_DISABLE
	if o.follow {
		req.StreamMode = apb.GetLogsRequest_STREAM_MODE_UNBUFFERED
	} else if o.backlog == 0 {
		return nil, errors.New("--backlog 0 without --follow would show nothing")
	}
	if !o.exact {
		req.Filters = append(req.Filters, &cpb.LogFilter{Filter: &cpb.LogFilter_WithChildren_{WithChildren: &cpb.LogFilter_WithChildren{}}})
	}
	if o.onlyRaw && (o.onlyLeveled || o.minSeverity != "") {
		return nil, errors.New("--raw shows only unleveled entries and cannot be combined with --leveled or --min-severity")
	}
	if o.onlyRaw {
		req.Filters = append(req.Filters, &cpb.LogFilter{Filter: &cpb.LogFilter_OnlyRaw_{OnlyRaw: &cpb.LogFilter_OnlyRaw{}}})
	}
	if o.onlyLeveled {
		req.Filters = append(req.Filters, &cpb.LogFilter{Filter: &cpb.LogFilter_OnlyLeveled_{OnlyLeveled: &cpb.LogFilter_OnlyLeveled{}}})
	}
	if o.minSeverity != "" {
		sev, ok := lpb.Severity_value[strings.ToUpper(o.minSeverity)]
		if !ok || sev == int32(lpb.Severity_SEVERITY_INVALID) {
			return nil, fmt.Errorf("--min-severity %q: want info, warning, error or fatal", o.minSeverity)
		}
		req.Filters = append(req.Filters, &cpb.LogFilter{Filter: &cpb.LogFilter_LeveledWithMinimumSeverity_{
			LeveledWithMinimumSeverity: &cpb.LogFilter_LeveledWithMinimumSeverity{Minimum: lpb.Severity(sev)},
		}})
	}
	return req, nil
}

func newNodeLogsCommand(e *env) *cobra.Command {
	o := logsOptions{}
	cmd := &cobra.Command{
		Use:   "logs node-id",
		Short: "Show the logs of a node",
		Long: `Shows the logs of a node, read from the node itself (its NodeManagement
service). Logs form a tree of loggers named by DNs such as root.network.dhcp;
--dn selects a subtree (or with --exact, a single logger).

By default all logs kept on the node are shown; --backlog limits them to the
newest entries, and --follow keeps showing new entries until interrupted.`,
		Example: `  metroctl node logs metropolis-1f2e...
  metroctl node logs metropolis-1f2e... --dn root.network --follow --backlog 20
  metroctl node logs metropolis-1f2e... --min-severity warning --concise`,
		Args: args(1, 1, "one node ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			req, err := o.request()
			if err != nil {
				return usageError{cmd, err}
			}
			ctx := cmd.Context()
			return e.withNodeManagement(ctx, args[0], func(n *apb.Node, nm apb.NodeManagementClient) error {
				stream, err := nm.Logs(ctx, req)
				if err != nil {
					return fmt.Errorf("reading logs of %s: %w", n.Id, err)
				}
				e.statusf("=== Logs from %s (%s):", n.Id, n.Status.GetExternalAddress())
				err = e.writeOutput(func(w io.Writer) error {
					for {
						res, err := stream.Recv()
						if err == io.EOF {
							return nil
						}
						if err != nil {
							if ctx.Err() != nil {
								// Interrupted, which is how --follow ends.
								return nil
							}
							return fmt.Errorf("reading logs of %s: %w", n.Id, err)
						}
						for _, entries := range [][]*lpb.LogEntry{res.BacklogEntries, res.StreamEntries} {
							for _, entry := range entries {
								if err := e.writeLogEntry(w, entry, o.concise); err != nil {
									return err
								}
							}
						}
					}
				})
				if err != nil {
					return err
				}
				e.statusf("=== Done.")
				return nil
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.dn, "dn", "", "DN of the logger whose logs to show, with those below it (empty: all)")
	f.BoolVarP(&o.exact, "exact", "e", false, "show only the logger named by --dn, not those below it")
	f.BoolVarP(&o.follow, "follow", "f", false, "keep showing new entries until interrupted")
	f.Int64Var(&o.backlog, "backlog", -1, "how many of the newest entries kept on the node to show: -1 all, 0 none")
	f.StringVar(&o.minSeverity, "min-severity", "", "show only leveled entries at least this severe: info, warning, error or fatal")
	f.BoolVar(&o.onlyRaw, "raw", false, "show only raw (unleveled) entries, such as output of processes")
	f.BoolVar(&o.onlyLeveled, "leveled", false, "show only leveled entries")
	f.BoolVarP(&o.concise, "concise", "c", false, "show entries in a short form with time and shortened DN only")
	return cmd
}

// writeLogEntry writes a log entry in the chosen format: its full or
// concise text form, or a line of JSON.
func (e *env) writeLogEntry(w io.Writer, entry *lpb.LogEntry, concise bool) error {
	if e.json() {
		data, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(entry)
		if err != nil {
			return err
		}
		var line bytes.Buffer
		if err := json.Compact(&line, data); err != nil {
			return err
		}
		line.WriteByte('\n')
		_, err = w.Write(line.Bytes())
		return err
	}
	le, err := logtree.LogEntryFromProto(entry)
	if err != nil {
		e.statusf("Skipping invalid log entry from %q: %v", entry.GetDn(), err)
		return nil
	}
	text := le.String()
	if concise {
		text = strings.Join(le.ConciseString(logtree.MetropolisShortenDict, 0), "\n")
	}
	_, err = fmt.Fprintln(w, text)
	return err
}

func newNodeRebootCommand(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "reboot node-id",
		Short: "Restart a node",
		Long: `Restarts a node through its firmware. The node answers first and restarts a
moment later; it rejoins the cluster by itself once it has booted.`,
		Example: `  metroctl node reboot metropolis-1f2e...`,
		Args:    args(1, 1, "one node ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return e.power(cmd.Context(), args[0], apb.RebootRequest_TYPE_FIRMWARE, "rebooting")
		},
	}
}

func newNodePoweroffCommand(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "poweroff node-id",
		Short: "Turn a node off",
		Long: `Turns a node off. It stays off until it is turned on by other means, such as
its power button or its baseboard management controller.`,
		Example: `  metroctl node poweroff metropolis-1f2e...`,
		Args:    args(1, 1, "one node ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return e.power(cmd.Context(), args[0], apb.RebootRequest_TYPE_POWER_OFF, "powering off")
		},
	}
}

// power asks the node id to restart or turn off.
func (e *env) power(ctx context.Context, id string, typ apb.RebootRequest_Type, doing string) error {
	return e.withNodeManagement(ctx, id, func(n *apb.Node, nm apb.NodeManagementClient) error {
		if _, err := nm.Reboot(ctx, &apb.RebootRequest{Type: typ}); err != nil {
			return fmt.Errorf("%s %s: %w", doing, n.Id, err)
		}
		e.statusf("Node %s is %s.", n.Id, doing)
		return nil
	})
}
