package mgmt

import (
	"math"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"metropolis.dev/metropolis/proto/api"
	cpb "metropolis.dev/metropolis/proto/common"
	"metropolis.dev/osbase/logtree"
	lpb "metropolis.dev/osbase/logtree/proto"
)

const (
	// maxFilters bounds the filters of one request.
	maxFilters = 10
	// backlogChunkSize is the most backlog entries sent in one response.
	backlogChunkSize = 2000
	// maxStreamBatch is the most entries sent in one streamed response:
	// entries that queued up while the previous one was sent go together.
	maxStreamBatch = 100
)

// Logs implements NodeManagement.Logs.
func (s *Service) Logs(req *api.GetLogsRequest, srv grpc.ServerStreamingServer[api.GetLogsResponse]) error {
	dn, opts, err := readOptions(req)
	if err != nil {
		return err
	}
	r, err := s.LogTree.Read(dn, opts...)
	if err != nil {
		// readOptions checked everything the tree checks.
		return status.Errorf(codes.Internal, "reading logs: %v", err)
	}
	defer r.Close()

	for len(r.Backlog) > 0 {
		n := min(len(r.Backlog), backlogChunkSize)
		if err := srv.Send(&api.GetLogsResponse{BacklogEntries: protos(r.Backlog[:n])}); err != nil {
			return err
		}
		r.Backlog = r.Backlog[n:]
	}
	if r.Stream == nil {
		return nil
	}

	ctx := srv.Context()
	for {
		var batch []*logtree.LogEntry
		select {
		case <-ctx.Done():
			return ctx.Err()
		case e := <-r.Stream:
			batch = append(batch, e)
		}
	more:
		for len(batch) < maxStreamBatch {
			select {
			case e := <-r.Stream:
				batch = append(batch, e)
			default:
				break more
			}
		}
		if err := srv.Send(&api.GetLogsResponse{StreamEntries: protos(batch)}); err != nil {
			return err
		}
	}
}

// protos converts entries to their wire form. LogEntry.Proto replaces
// invalid UTF-8, which a proto string must not hold and which raw lines of
// processes may contain.
func protos(entries []*logtree.LogEntry) []*lpb.LogEntry {
	out := make([]*lpb.LogEntry, len(entries))
	for i, e := range entries {
		out[i] = e.Proto()
	}
	return out
}

// readOptions checks req and turns it into the DN and options of a log
// tree read.
func readOptions(req *api.GetLogsRequest) (logtree.DN, []logtree.LogReadOption, error) {
	dn := logtree.DN(req.Dn)
	if _, err := dn.Path(); err != nil {
		return "", nil, status.Errorf(codes.InvalidArgument, "dn: %v", err)
	}
	var opts []logtree.LogReadOption

	switch req.BacklogMode {
	case api.GetLogsRequest_BACKLOG_MODE_DISABLE:
	case api.GetLogsRequest_BACKLOG_MODE_ALL:
		opts = append(opts, logtree.WithBacklog(logtree.BacklogAllAvailable))
	case api.GetLogsRequest_BACKLOG_MODE_COUNT:
		if req.BacklogCount <= 0 {
			return "", nil, status.Errorf(codes.InvalidArgument, "backlog_count is %d, must be positive with BACKLOG_MODE_COUNT", req.BacklogCount)
		}
		// No tree buffers more entries than an int can count.
		opts = append(opts, logtree.WithBacklog(int(min(req.BacklogCount, math.MaxInt32))))
	default:
		return "", nil, status.Errorf(codes.InvalidArgument, "backlog_mode %v: want DISABLE, ALL or COUNT", req.BacklogMode)
	}

	switch req.StreamMode {
	case api.GetLogsRequest_STREAM_MODE_DISABLE:
	case api.GetLogsRequest_STREAM_MODE_UNBUFFERED:
		opts = append(opts, logtree.WithStream())
	default:
		return "", nil, status.Errorf(codes.InvalidArgument, "stream_mode %v: want DISABLE or UNBUFFERED", req.StreamMode)
	}

	if len(req.Filters) > maxFilters {
		return "", nil, status.Errorf(codes.InvalidArgument, "%d filters, at most %d are allowed", len(req.Filters), maxFilters)
	}
	var onlyRaw, onlyLeveled bool
	var minSeverity logtree.Severity
	for i, f := range req.Filters {
		switch f := f.GetFilter().(type) {
		case *cpb.LogFilter_WithChildren_:
			opts = append(opts, logtree.WithChildren())
		case *cpb.LogFilter_OnlyRaw_:
			onlyRaw = true
		case *cpb.LogFilter_OnlyLeveled_:
			onlyLeveled = true
		case *cpb.LogFilter_LeveledWithMinimumSeverity_:
			sev, ok := severity(f.LeveledWithMinimumSeverity.GetMinimum())
			if !ok {
				return "", nil, status.Errorf(codes.InvalidArgument, "filter %d: invalid minimum severity %v", i, f.LeveledWithMinimumSeverity.GetMinimum())
			}
			// All filters must match: the strictest minimum wins.
			minSeverity = max(minSeverity, sev)
		default:
			return "", nil, status.Errorf(codes.InvalidArgument, "filter %d is empty", i)
		}
	}
	switch {
	case onlyRaw && onlyLeveled:
		return "", nil, status.Error(codes.InvalidArgument, "filters only_raw and only_leveled exclude each other")
	case onlyRaw && minSeverity != 0:
		return "", nil, status.Error(codes.InvalidArgument, "filters only_raw and leveled_with_minimum_severity exclude each other")
	case onlyRaw:
		opts = append(opts, logtree.OnlyRaw())
	case onlyLeveled:
		opts = append(opts, logtree.OnlyLeveled())
	}
	if minSeverity != 0 {
		// Raw entries have no severity, so they cannot meet a minimum.
		opts = append(opts, logtree.OnlyLeveled(), logtree.LeveledWithMinimumSeverity(minSeverity))
	}
	return dn, opts, nil
}

// severity converts a wire severity, reporting whether it is a valid one.
func severity(s lpb.Severity) (logtree.Severity, bool) {
	switch s {
	case lpb.Severity_INFO:
		return logtree.INFO, true
	case lpb.Severity_WARNING:
		return logtree.WARNING, true
	case lpb.Severity_ERROR:
		return logtree.ERROR, true
	case lpb.Severity_FATAL:
		return logtree.FATAL, true
	}
	return 0, false
}
