package main

import (
	"bytes"
	"io"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	apb "metropolis.dev/metropolis/proto/api"
)

// columns splits a line of a core.Table into its cells, which are at least
// three spaces apart and may contain single spaces.
func columns(line string) []string {
	return regexp.MustCompile(`\s{3,}`).Split(strings.TrimSpace(line), -1)
}

func TestWriteMeshStatus(t *testing.T) {
	status := fakeMeshStatus()
	now := status.Peers[0].LastHandshake.AsTime().Add(12 * time.Second)
	var b bytes.Buffer
	if err := writeMeshStatus(&b, "metropolis-0000", status, now); err != nil {
		t.Fatal(err)
	}
	self, peers, ok := strings.Cut(b.String(), "\n\n")
	if !ok {
		t.Fatalf("no blank line between the node and its peers:\n%s", b.String())
	}
	var gotSelf [][]string
	for _, l := range strings.Split(strings.TrimSpace(self), "\n") {
		gotSelf = append(gotSelf, columns(l))
	}
	wantSelf := [][]string{
		{"Node ID:", "metropolis-0000"},
		{"WireGuard key:", status.WireguardPubkey},
		{"Mesh address:", "10.192.0.2"},
		{"Listen port:", "7838"},
	}
	var gotPeers [][]string
	for _, l := range strings.Split(strings.TrimSpace(peers), "\n") {
		gotPeers = append(gotPeers, columns(l))
	}
	wantPeers := [][]string{
		{"PEER", "ENDPOINT", "ALLOWED PREFIXES", "LAST HANDSHAKE", "RECEIVED", "SENT"},
		{status.Peers[0].NodeId, "10.1.0.3:7838", "10.1.0.3/32,10.192.0.3/32,10.200.1.0/24", "12s ago", "1.5 KiB", "3 MiB"},
		{status.Peers[1].NodeId, "10.1.0.4:7838", "10.1.0.4/32,10.192.0.4/32", "never", "0 B", "0 B"},
	}
	for _, c := range []struct {
		what      string
		got, want [][]string
	}{{"node", gotSelf, wantSelf}, {"peers", gotPeers, wantPeers}} {
		if !slices.EqualFunc(c.got, c.want, slices.Equal) {
			t.Errorf("%s:\n got %q\nwant %q\noutput:\n%s", c.what, c.got, c.want, b.String())
		}
	}

	b.Reset()
	if err := writeMeshStatus(&b, "metropolis-0000", &apb.GetMeshStatusResponse{WireguardPubkey: "k", ListenPort: 7838}, now); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"none assigned yet", "No peers."} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("mesh status of a lonely node lacks %q:\n%s", want, b.String())
		}
	}
}

func TestHandshakeAge(t *testing.T) {
	now := time.Date(2026, 3, 4, 13, 30, 0, 0, time.UTC)
	for _, tc := range []struct {
		handshake *timestamppb.Timestamp
		want      string
	}{
		{nil, "never"},
		{timestamppb.New(now.Add(-12 * time.Second)), "12s ago"},
		{timestamppb.New(now.Add(-12400 * time.Millisecond)), "12s ago"},
		{timestamppb.New(now.Add(-90 * time.Second)), "1m30s ago"},
		{timestamppb.New(now.Add(-26 * time.Hour)), "26h0m0s ago"},
		{timestamppb.New(now.Add(5 * time.Second)), "0s ago"},
	} {
		if got := handshakeAge(tc.handshake, now); got != tc.want {
			t.Errorf("handshakeAge(%v) = %q, want %q", tc.handshake.AsTime(), got, tc.want)
		}
	}
}

func TestFormatBytes(t *testing.T) {
	for _, tc := range []struct {
		n    uint64
		want string
	}{
		{0, "0 B"},
		{1023, "1023 B"},
		{1024, "1 KiB"},
		{1536, "1.5 KiB"},
		{16 << 20, "16 MiB"},
		{1<<30 + 1<<29, "1.5 GiB"},
		{5 << 40, "5 TiB"},
		{1<<64 - 1, "16 EiB"},
	} {
		if got := formatBytes(tc.n); got != tc.want {
			t.Errorf("formatBytes(%d) = %q, want %q", tc.n, got, tc.want)
		}
	}
}

// TestProbeFlags parses the flags of 'node probe' as the command does.
func TestProbeFlags(t *testing.T) {
	mesh, external := apb.ProbePeerRequest_PATH_MESH, apb.ProbePeerRequest_PATH_EXTERNAL
	for _, tc := range []struct {
		args      []string
		wantBytes uint64
		wantPaths probePaths
		wantErr   string
	}{
		{args: nil, wantBytes: 16 << 20, wantPaths: probePaths{mesh}},
		{args: []string{"--bytes", "64MiB"}, wantBytes: 64 << 20, wantPaths: probePaths{mesh}},
		{args: []string{"--bytes", "64mib"}, wantBytes: 64 << 20, wantPaths: probePaths{mesh}},
		{args: []string{"--bytes", "512K"}, wantBytes: 512 << 10, wantPaths: probePaths{mesh}},
		{args: []string{"--bytes", "2MB"}, wantBytes: 2 << 20, wantPaths: probePaths{mesh}},
		{args: []string{"--bytes", "1G"}, wantBytes: 1 << 30, wantPaths: probePaths{mesh}},
		{args: []string{"--bytes", "1"}, wantBytes: 1, wantPaths: probePaths{mesh}},
		{args: []string{"--bytes", "4096B"}, wantBytes: 4096, wantPaths: probePaths{mesh}},
		{args: []string{"--path", "external"}, wantBytes: 16 << 20, wantPaths: probePaths{external}},
		{args: []string{"--path", "both", "--bytes", "1KiB"}, wantBytes: 1 << 10, wantPaths: probePaths{mesh, external}},
		{args: []string{"--path", "mesh"}, wantBytes: 16 << 20, wantPaths: probePaths{mesh}},

		{args: []string{"--bytes", "0"}, wantErr: `invalid argument "0" for "--bytes" flag: a probe sends at least 1 byte`},
		{args: []string{"--bytes", "0MiB"}, wantErr: "at least 1 byte"},
		{args: []string{"--bytes", "1025MiB"}, wantErr: `invalid argument "1025MiB" for "--bytes" flag: a probe sends at most 1GiB`},
		{args: []string{"--bytes", "99999999999999999999"}, wantErr: "99999999999999999999 is too large"},
		{args: []string{"--bytes", "17179869184G"}, wantErr: "17179869184G is too large"},
		{args: []string{"--bytes", "16TiB"}, wantErr: `unknown unit "TiB": want K, M or G`},
		{args: []string{"--bytes", "1.5M"}, wantErr: `unknown unit ".5M"`},
		{args: []string{"--bytes", "-1"}, wantErr: "want a whole number of bytes"},
		{args: []string{"--bytes", "MiB"}, wantErr: "want a whole number of bytes"},
		{args: []string{"--bytes", ""}, wantErr: "want a whole number of bytes"},
		{args: []string{"--path", "foo"}, wantErr: `invalid argument "foo" for "--path" flag: want mesh, external or both`},
		{args: []string{"--path", "Mesh"}, wantErr: "want mesh, external or both"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			cmd := newNodeProbeCommand(&env{stdout: io.Discard, stderr: io.Discard})
			err := cmd.ParseFlags(tc.args)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("parsing %q: %v, want error containing %q", tc.args, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("parsing %q: %v", tc.args, err)
			}
			gotBytes := uint64(*cmd.Flags().Lookup("bytes").Value.(*probeSize))
			gotPaths := *cmd.Flags().Lookup("path").Value.(*probePaths)
			if gotBytes != tc.wantBytes || !slices.Equal(gotPaths, tc.wantPaths) {
				t.Errorf("parsing %q: bytes %d, paths %v, want %d, %v", tc.args, gotBytes, gotPaths, tc.wantBytes, tc.wantPaths)
			}
		})
	}
}

func TestWriteProbeReport(t *testing.T) {
	ratio := 0.5
	r := probeReport{
		From: "metropolis-1111",
		To:   "metropolis-2222",
		Probes: []probeResult{
			{Path: "mesh", Address: "10.192.0.3:7836", Bytes: 16 << 20, DurationSeconds: 2, BytesPerSecond: 8 << 20},
			{Path: "external", Address: "10.1.0.3:7836", Bytes: 16 << 20, DurationSeconds: 1, BytesPerSecond: 16 << 20},
		},
		MeshToExternal: &ratio,
	}
	var b bytes.Buffer
	if err := writeProbeReport(&b, r); err != nil {
		t.Fatal(err)
	}
	blocks := strings.Split(strings.TrimSpace(b.String()), "\n\n")
	if len(blocks) != 3 {
		t.Fatalf("%d blocks, want a block per probe and the ratio:\n%s", len(blocks), b.String())
	}
	for i, want := range [][][]string{
		{
			{"Path:", "mesh"},
			{"Address:", "10.192.0.3:7836"},
			{"Bytes:", "16777216 (16 MiB)"},
			{"Duration:", "2s"},
			{"Throughput:", "8.4 MB/s (67.1 Mbit/s)"},
		},
		{
			{"Path:", "external"},
			{"Address:", "10.1.0.3:7836"},
			{"Bytes:", "16777216 (16 MiB)"},
			{"Duration:", "1s"},
			{"Throughput:", "16.8 MB/s (134.2 Mbit/s)"},
		},
	} {
		var got [][]string
		for _, l := range strings.Split(blocks[i], "\n") {
			got = append(got, columns(l))
		}
		if !slices.EqualFunc(got, want, slices.Equal) {
			t.Errorf("probe %d:\n got %q\nwant %q", i, got, want)
		}
	}
	if want := "Mesh/external throughput: 0.50"; blocks[2] != want {
		t.Errorf("ratio line %q, want %q", blocks[2], want)
	}
}

func TestRoundDuration(t *testing.T) {
	for _, tc := range []struct{ in, want time.Duration }{
		{1234567891 * time.Nanosecond, 1235 * time.Millisecond},
		{12345678 * time.Nanosecond, 12346 * time.Microsecond},
		{123456 * time.Nanosecond, 123456 * time.Nanosecond},
	} {
		if got := roundDuration(tc.in); got != tc.want {
			t.Errorf("roundDuration(%v) = %v, want %v", tc.in, got, tc.want)
		}
	}
}
