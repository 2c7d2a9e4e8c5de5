package main

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"

	apb "metropolis.dev/metropolis/proto/api"
	cpb "metropolis.dev/metropolis/proto/common"
	lpb "metropolis.dev/osbase/logtree/proto"
)

func TestLogsRequest(t *testing.T) {
	withChildren := &cpb.LogFilter{Filter: &cpb.LogFilter_WithChildren_{WithChildren: &cpb.LogFilter_WithChildren{}}}
	onlyRaw := &cpb.LogFilter{Filter: &cpb.LogFilter_OnlyRaw_{OnlyRaw: &cpb.LogFilter_OnlyRaw{}}}
	onlyLeveled := &cpb.LogFilter{Filter: &cpb.LogFilter_OnlyLeveled_{OnlyLeveled: &cpb.LogFilter_OnlyLeveled{}}}
	minimum := func(s lpb.Severity) *cpb.LogFilter {
		return &cpb.LogFilter{Filter: &cpb.LogFilter_LeveledWithMinimumSeverity_{
			LeveledWithMinimumSeverity: &cpb.LogFilter_LeveledWithMinimumSeverity{Minimum: s},
		}}
	}
	for _, tc := range []struct {
		name    string
		opts    logsOptions
		want    *apb.GetLogsRequest
		wantErr string
	}{
		{
			name: "defaults",
			opts: logsOptions{backlog: -1},
			want: &apb.GetLogsRequest{
				Filters:     []*cpb.LogFilter{withChildren},
				BacklogMode: apb.GetLogsRequest_BACKLOG_MODE_ALL,
				StreamMode:  apb.GetLogsRequest_STREAM_MODE_DISABLE,
			},
		},
		{
			name: "follow only new entries of one logger",
			opts: logsOptions{dn: "root.network", exact: true, follow: true, backlog: 0},
			want: &apb.GetLogsRequest{
				Dn:          "root.network",
				BacklogMode: apb.GetLogsRequest_BACKLOG_MODE_DISABLE,
				StreamMode:  apb.GetLogsRequest_STREAM_MODE_UNBUFFERED,
			},
		},
		{
			name: "newest entries, raw",
			opts: logsOptions{backlog: 20, onlyRaw: true},
			want: &apb.GetLogsRequest{
				Filters:      []*cpb.LogFilter{withChildren, onlyRaw},
				BacklogMode:  apb.GetLogsRequest_BACKLOG_MODE_COUNT,
				BacklogCount: 20,
				StreamMode:   apb.GetLogsRequest_STREAM_MODE_DISABLE,
			},
		},
		{
			name: "leveled at least errors",
			opts: logsOptions{backlog: -1, onlyLeveled: true, minSeverity: "Error"},
			want: &apb.GetLogsRequest{
				Filters:     []*cpb.LogFilter{withChildren, onlyLeveled, minimum(lpb.Severity_ERROR)},
				BacklogMode: apb.GetLogsRequest_BACKLOG_MODE_ALL,
				StreamMode:  apb.GetLogsRequest_STREAM_MODE_DISABLE,
			},
		},
		{name: "nothing to show", opts: logsOptions{backlog: 0}, wantErr: "would show nothing"},
		{name: "negative backlog", opts: logsOptions{backlog: -5}, wantErr: "--backlog -5"},
		{name: "raw and leveled", opts: logsOptions{backlog: -1, onlyRaw: true, onlyLeveled: true}, wantErr: "cannot be combined"},
		{name: "raw with severity", opts: logsOptions{backlog: -1, onlyRaw: true, minSeverity: "info"}, wantErr: "cannot be combined"},
		{name: "unknown severity", opts: logsOptions{backlog: -1, minSeverity: "debug"}, wantErr: `--min-severity "debug"`},
		{name: "invalid severity", opts: logsOptions{backlog: -1, minSeverity: "severity_invalid"}, wantErr: "--min-severity"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.opts.request()
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("request() = %v, %v, want error containing %q", got, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got, protocmp.Transform()); diff != "" {
				t.Errorf("request (-want +got):\n%s", diff)
			}
		})
	}
}

func TestLabelRequest(t *testing.T) {
	for _, tc := range []struct {
		name    string
		changes []string
		want    *apb.UpdateNodeLabelsRequest
		wantErr string
	}{
		{
			name:    "upserts and deletes",
			changes: []string{"zone=west", "-tier", "example.com/rack=a1", "empty="},
			want: &apb.UpdateNodeLabelsRequest{
				Node: &apb.UpdateNodeLabelsRequest_Id{Id: "n"},
				Upsert: []*apb.UpdateNodeLabelsRequest_Pair{
					{Key: "empty", Value: ""}, {Key: "example.com/rack", Value: "a1"}, {Key: "zone", Value: "west"},
				},
				Delete: []string{"tier"},
			},
		},
		{name: "set and delete", changes: []string{"zone=a", "-zone"}, wantErr: "changed twice"},
		{name: "set twice", changes: []string{"zone=a", "zone=b"}, wantErr: "changed twice"},
		{name: "no value", changes: []string{"zone"}, wantErr: "want key=value"},
		{name: "invalid delete", changes: []string{"--zone"}, wantErr: `label key "-zone"`},
		{name: "invalid value", changes: []string{"zone=a b"}, wantErr: `label value "a b"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := labelRequest("n", tc.changes)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("labelRequest = %v, %v, want error containing %q", got, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got, protocmp.Transform()); diff != "" {
				t.Errorf("request (-want +got):\n%s", diff)
			}
		})
	}
}

func TestReadLine(t *testing.T) {
	r := strings.NewReader("yes\nrest")
	if line, err := readLine(r); err != nil || line != "yes" {
		t.Errorf("readLine = %q, %v", line, err)
	}
	if rest, err := readLine(r); err != nil || rest != "rest" {
		t.Errorf("second readLine = %q, %v, want what follows the first line", rest, err)
	}
}
