package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"

	"metropolis.dev/metropolis/cli/metroctl/core"
	"metropolis.dev/metropolis/node/core/curator/curatortest"
	ipb "metropolis.dev/metropolis/node/core/curator/proto/api"
	apb "metropolis.dev/metropolis/proto/api"
	cpb "metropolis.dev/metropolis/proto/common"
	"metropolis.dev/osbase/logtree"
	lpb "metropolis.dev/osbase/logtree/proto"
)

// TestMetroctl runs metroctl commands against a cluster with a real curator
// (embedded etcd, gRPC over mutual TLS) and simulated nodes, the way an
// operator would.
func TestMetroctl(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cluster := curatortest.New(t, curatortest.Options{})
	endpoint := cluster.Curators[0].Host
	curatorID := cluster.Curators[0].Node.ID
	fingerprint := core.Fingerprint(cluster.CA)

	// owner is the configuration of the operator who owns the cluster.
	owner := newCLI(t, endpoint)
	writeOwnerKey(t, owner.config, cluster.OwnerKey)
	owner.mustRun(t, "cluster", "takeownership", "--accept-ca", fingerprint)

	// withOwnerConfig returns a configuration with copies of the owner's
	// files (those named), reaching the cluster at endpoints.
	withOwnerConfig := func(t *testing.T, files []string, endpoints ...string) *cli {
		c := newCLI(t, endpoints...)
		if err := os.MkdirAll(c.config, 0o700); err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			data, err := os.ReadFile(filepath.Join(owner.config, f))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(c.config, f), data, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		return c
	}
	allFiles := []string{"owner-key.pem", "owner.pem", "ca.pem"}

	worker1, err := cluster.AddNode(ctx, curatortest.NodeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	worker2, err := cluster.AddNode(ctx, curatortest.NodeOptions{
		Labels: &cpb.NodeLabels{Pairs: []*cpb.NodeLabels_Pair{{Key: "example.com/rack", Value: "b7"}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	pending, err := cluster.NewNode(curatortest.NodeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pending.Register(ctx); err != nil {
		t.Fatal(err)
	}
	managed, err := cluster.AddNode(ctx, curatortest.NodeOptions{Host: randomLoopbackHost()})
	if err != nil {
		t.Fatal(err)
	}
	mgmt := serveNodeManagement(t, managed)
	const unknownID = "metropolis-00000000000000000000000000000000"

	t.Run("ErrorsBeforeConnecting", func(t *testing.T) {
		withKey := newCLI(t)
		writeOwnerKey(t, withKey.config, cluster.OwnerKey)
		for _, tc := range []struct {
			name  string
			cli   *cli
			args  []string
			wants []string
		}{
			{"no owner key", newCLI(t, endpoint), []string{"cluster", "takeownership"},
				[]string{"no owner key", "owner-key.pem does not exist", "create one with 'metroctl cluster init-owner'"}},
			{"no endpoints", withKey, []string{"cluster", "takeownership"},
				[]string{"no endpoints given: pass --endpoints"}},
			{"not owner yet", newCLI(t, endpoint), []string{"node", "list"},
				[]string{"take ownership first: metroctl", "cluster takeownership"}},
			{"no endpoints for owner", withOwnerConfig(t, allFiles), []string{"node", "list"},
				[]string{"no endpoints given: pass --endpoints"}},
			{"invalid endpoint", withOwnerConfig(t, allFiles, "a:b:c"), []string{"node", "list"},
				[]string{`endpoint "a:b:c"`}},
			{"unknown format", owner, []string{"--format", "yaml", "node", "list"},
				[]string{`unknown --format "yaml"`, "Run 'metroctl node list --help' for usage."}},
			{"missing node ID", owner, []string{"node", "delete"},
				[]string{"metroctl node delete takes one node ID, got 0 argument(s)", "Run 'metroctl node delete --help'"}},
			{"unknown role", owner, []string{"node", "add", "role", "frontend", worker1.ID},
				[]string{`unknown role "frontend"`, "KubernetesWorker (kw)"}},
			{"invalid label", owner, []string{"node", "label", worker1.ID, "bad key=x"},
				[]string{`label key "bad key"`}},
			{"params without output", owner, []string{"node", "params", "--bootstrap", "--cluster", "a.internal"},
				[]string{"pass -o with the file"}},
			{"params bootstrap and register", owner, []string{"node", "params", "--bootstrap", "--register", "-o", "x"},
				[]string{"exactly one of --bootstrap and --register"}},
			{"params bootstrap without domain", owner, []string{"node", "params", "--bootstrap", "-o", "x"},
				[]string{"--bootstrap needs --cluster"}},
			{"params register with TPM mode", owner, []string{"node", "params", "--register", "--tpm-mode", "disabled", "-o", "x"},
				[]string{"--tpm-mode only applies to a new cluster"}},
			{"logs backlog", owner, []string{"node", "logs", "--backlog", "-2", managed.ID},
				[]string{"--backlog -2"}},
			{"probe bytes zero", owner, []string{"node", "probe", "--bytes", "0", managed.ID, worker1.ID},
				[]string{`invalid argument "0" for "--bytes" flag: a probe sends at least 1 byte`, "Run 'metroctl node probe --help'"}},
			{"probe unknown path", owner, []string{"node", "probe", "--path", "foo", managed.ID, worker1.ID},
				[]string{`invalid argument "foo" for "--path" flag: want mesh, external or both`, "Run 'metroctl node probe --help'"}},
			{"probe itself", owner, []string{"node", "probe", managed.ID, managed.ID},
				[]string{managed.ID + " would probe itself", "Run 'metroctl node probe --help'"}},
			{"probe one node", owner, []string{"node", "probe", managed.ID},
				[]string{"metroctl node probe takes two node IDs, to send from and to, got 1 argument(s)"}},
			{"mesh without node", owner, []string{"node", "mesh"},
				[]string{"metroctl node mesh takes one node ID, got 0 argument(s)"}},
			{"unknown command", owner, []string{"frobnicate"},
				[]string{`unknown command "frobnicate"`, "Run 'metroctl --help' for usage."}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				tc.cli.mustFail(t, tc.args, tc.wants...)
			})
		}
	})

	t.Run("TrustOnFirstUse", func(t *testing.T) {
		plainHex := strings.ToUpper(strings.TrimPrefix(fingerprint, "SHA256:"))
		for _, tc := range []struct {
			name        string
			interactive bool
			input       string
			flags       []string
			// wantErr is empty if the CA is to be trusted.
			wantErr []string
		}{
			{name: "nobody to ask", wantErr: []string{"cluster CA not trusted", "nobody was asked", fingerprint, "--accept-ca"}},
			{name: "operator refuses", interactive: true, input: "no\n", wantErr: []string{"which was refused"}},
			{name: "wrong fingerprint", flags: []string{"--accept-ca", core.Fingerprint(foreignCA(t))}, wantErr: []string{"not the expected"}},
			{name: "malformed fingerprint", flags: []string{"--accept-ca", "SHA256:1234"}, wantErr: []string{"not a SHA-256 digest"}},
			{name: "operator confirms", interactive: true, input: "yes\n"},
			{name: "expected fingerprint", flags: []string{"--accept-ca", plainHex}},
			{name: "trust on first use", flags: []string{"--trust-on-first-use"}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				c := withOwnerConfig(t, []string{"owner-key.pem"}, endpoint)
				r := c.exec(tc.input, tc.interactive, append(tc.flags, "cluster", "takeownership")...)
				stored, caErr := core.Config{Dir: c.config}.TrustedCA()
				if len(tc.wantErr) > 0 {
					if r.err == nil {
						t.Fatalf("takeownership succeeded, want error\n%v", r)
					}
					for _, want := range tc.wantErr {
						if !strings.Contains(r.err.Error(), want) {
							t.Errorf("error does not contain %q:\n%v", want, r)
						}
					}
					if caErr == nil {
						t.Errorf("a CA was stored although it was not trusted")
					}
					return
				}
				if r.err != nil {
					t.Fatalf("takeownership: %v", r)
				}
				if caErr != nil || !stored.Equal(cluster.CA) {
					t.Errorf("stored CA: %v, want the cluster's", caErr)
				}
				if tc.interactive && !strings.Contains(r.stderr, fingerprint) {
					t.Errorf("the operator was not shown the fingerprint:\n%s", r.stderr)
				}
				if _, err := (core.Config{Dir: c.config}).OwnerCertificate(); err != nil {
					t.Errorf("owner certificate: %v", err)
				}
			})
		}
	})

	t.Run("WrongOwnerKey", func(t *testing.T) {
		c := newCLI(t, endpoint)
		c.mustRun(t, "cluster", "init-owner")
		c.mustFail(t, []string{"--trust-on-first-use", "cluster", "takeownership"},
			"the cluster refused the owner key; it was bootstrapped with another one", "PermissionDenied")
		if _, err := os.Stat(filepath.Join(c.config, "owner.pem")); err == nil {
			t.Errorf("an owner certificate was stored")
		}
	})

	t.Run("OwnerCertificateVouchesForCA", func(t *testing.T) {
		c := withOwnerConfig(t, []string{"owner-key.pem", "owner.pem"}, endpoint)
		r := c.mustRun(t, "node", "list")
		if !strings.Contains(r.stderr, "it issued the owner certificate") {
			t.Errorf("CA trusted for another reason:\n%s", r.stderr)
		}
	})

	t.Run("CAMismatch", func(t *testing.T) {
		c := withOwnerConfig(t, []string{"owner-key.pem", "owner.pem"}, endpoint)
		foreign := foreignCA(t)
		if err := (core.Config{Dir: c.config}).SaveTrustedCA(foreign); err != nil {
			t.Fatal(err)
		}
		wants := []string{
			"is not the trusted cluster",
			"presents CA " + fingerprint,
			"the trusted CA is " + core.Fingerprint(foreign),
			"belongs to another cluster",
		}
		c.mustFail(t, []string{"node", "list"}, wants...)
		c.mustFail(t, []string{"cluster", "takeownership"}, wants...)
		c.mustFail(t, []string{"--accept-ca", fingerprint, "node", "list"}, "not the expected")
	})

	t.Run("Unreachable", func(t *testing.T) {
		c := withOwnerConfig(t, allFiles, "127.0.0.1:1")
		r := c.mustFail(t, []string{"--connect-timeout", "4s", "node", "list"},
			"no curator leader reachable through 127.0.0.1:1 within 4s", "connection refused", "Check that --endpoints")
		if !strings.Contains(r.stderr, "Waiting for the curator leader (through 127.0.0.1:1)...") {
			t.Errorf("the operator was not told about the wait:\n%s", r.stderr)
		}
		// One endpoint that answers is enough, wherever it is in the list.
		c.endpoints = []string{"127.0.0.1:1", endpoint}
		c.mustRun(t, "node", "list")
	})

	t.Run("Proxy", func(t *testing.T) {
		proxy := startSOCKSProxy(t)
		c := withOwnerConfig(t, []string{"owner-key.pem", "owner.pem"}, endpoint)
		c.mustRun(t, "--proxy", proxy.addr, "node", "list")
		if proxy.connections.Load() == 0 {
			t.Errorf("no connection went through the proxy")
		}
	})

	t.Run("NodeList", func(t *testing.T) {
		const header = "NODE ID STATE ADDRESS HEALTH ROLES TPM VERSION HEARTBEAT"
		rows := tableRows(t, owner.mustRun(t, "node", "list").stdout, header)
		byID := map[string][]string{}
		for _, r := range rows {
			if len(r) != 8 {
				t.Fatalf("row %q does not have 8 columns", r)
			}
			byID[r[0]] = r
		}
		if len(byID) != 5 {
			t.Errorf("%d nodes listed, want 5: %q", len(byID), rows)
		}
		for id, want := range map[string][]string{
			curatorID:  {"UP", endpoint, "ConsensusMember,KubernetesController", "yes", "unknown"},
			worker1.ID: {"UP", worker1.Host, "-", "yes", "unknown"},
			pending.ID: {"NEW", "unknown", "-", "yes", "unknown"},
		} {
			row := byID[id]
			if row == nil {
				t.Errorf("node %s not listed", id)
				continue
			}
			got := []string{row[1], row[2], row[4], row[5], row[6]}
			if !slices.Equal(got, want) {
				t.Errorf("node %s: state, address, roles, TPM, version are %q, want %q", id, got, want)
			}
			if _, err := time.ParseDuration(row[7]); err != nil {
				t.Errorf("node %s: heartbeat %q is not a duration", id, row[7])
			}
		}

		rows = tableRows(t, owner.mustRun(t, "--filter", "node.state == NODE_STATE_NEW", "node", "list").stdout, header)
		if len(rows) != 1 || rows[0][0] != pending.ID {
			t.Errorf("filtered for NEW nodes, got %q", rows)
		}
		rows = tableRows(t, owner.mustRun(t, "node", "list", worker2.ID, worker1.ID).stdout, header)
		if len(rows) != 2 {
			t.Errorf("listed two nodes by ID, got %q", rows)
		}
		owner.mustFail(t, []string{"--filter", "node.nonsense ==", "node", "list"}, "InvalidArgument")
		owner.mustFail(t, []string{"node", "list", worker1.ID, unknownID}, "node not found in the cluster: "+unknownID)
		owner.mustFail(t, []string{"--filter", "node.state == NODE_STATE_NEW", "node", "list", worker1.ID}, "node not found matching --filter: "+worker1.ID)

		var nodes []map[string]any
		r := owner.mustRun(t, "--format", "json", "node", "list", pending.ID, curatorID)
		if err := json.Unmarshal([]byte(r.stdout), &nodes); err != nil {
			t.Fatalf("JSON output: %v\n%s", err, r.stdout)
		}
		if len(nodes) != 2 {
			t.Fatalf("JSON output has %d nodes, want 2", len(nodes))
		}
		for _, n := range nodes {
			switch n["id"] {
			case pending.ID:
				if n["state"] != "NODE_STATE_NEW" {
					t.Errorf("pending node in JSON: %v", n)
				}
			case curatorID:
				status, _ := n["status"].(map[string]any)
				if n["state"] != "NODE_STATE_UP" || status["external_address"] != endpoint {
					t.Errorf("curator node in JSON: %v", n)
				}
			default:
				t.Errorf("unexpected node in JSON: %v", n)
			}
		}

		out := filepath.Join(t.TempDir(), "nodes.txt")
		r = owner.mustRun(t, "-o", out, "node", "list", worker1.ID)
		if r.stdout != "" {
			t.Errorf("output went to stdout with -o: %q", r.stdout)
		}
		data, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		if rows := tableRows(t, string(data), header); len(rows) != 1 || rows[0][0] != worker1.ID {
			t.Errorf("-o file holds %q", data)
		}
	})

	t.Run("NodeDescribe", func(t *testing.T) {
		// The node joins the mesh, as its clusternet service would.
		wgKey := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32))
		conn, err := worker2.Conn()
		if err != nil {
			t.Fatal(err)
		}
		published, err := ipb.NewCuratorClient(conn).UpdateNodeClusterNetworking(ctx, &ipb.UpdateNodeClusterNetworkingRequest{
			Clusternet: &cpb.NodeClusterNetworking{
				WireguardPubkey: wgKey,
				Prefixes:        []*cpb.NodeClusterNetworking_Prefix{{Cidr: worker2.Host + "/32"}},
			},
		})
		if err != nil {
			t.Fatalf("publishing the mesh key: %v", err)
		}
		meshAddress := published.MeshAddress

		r := owner.mustRun(t, "node", "describe", worker2.ID)
		for _, want := range []string{
			"Node ID:", worker2.ID,
			"Public key:", hex.EncodeToString(worker2.PublicKey()),
			"Labels:", "example.com/rack=b7",
			"State:", "UP",
		} {
			if !strings.Contains(r.stdout, want) {
				t.Errorf("describe output lacks %q:\n%s", want, r.stdout)
			}
		}
		for _, want := range [][]string{
			{"Mesh address:", meshAddress},
			{"WireGuard key:", wgKey},
			{"Mesh prefixes:", worker2.Host + "/32"},
		} {
			if !slices.ContainsFunc(strings.Split(r.stdout, "\n"), func(l string) bool { return slices.Equal(columns(l), want) }) {
				t.Errorf("describe output lacks the line %q:\n%s", want, r.stdout)
			}
		}
		var nodes []*apb.Node
		r = owner.mustRun(t, "--format", "json", "node", "describe", worker2.ID)
		var raw []json.RawMessage
		if err := json.Unmarshal([]byte(r.stdout), &raw); err != nil {
			t.Fatal(err)
		}
		for _, m := range raw {
			n := &apb.Node{}
			if err := protojson.Unmarshal(m, n); err != nil {
				t.Fatal(err)
			}
			nodes = append(nodes, n)
		}
		if len(nodes) != 1 || nodes[0].Id != worker2.ID || !bytes.Equal(nodes[0].Pubkey, worker2.PublicKey()) {
			t.Errorf("JSON describe returned %v", nodes)
		}
		if cn := nodes[0].GetClusternet(); cn.GetMeshAddress() != meshAddress || cn.GetWireguardPubkey() != wgKey {
			t.Errorf("JSON describe has clusternet %v, want mesh address %s and key %s", cn, meshAddress, wgKey)
		}
		if !strings.Contains(r.stdout, `"mesh_address": "`+meshAddress+`"`) {
			t.Errorf("JSON describe lacks clusternet.mesh_address:\n%s", r.stdout)
		}
	})

	t.Run("Approve", func(t *testing.T) {
		if r := owner.mustRun(t, "approve"); r.stdout != pending.ID+"\n" {
			t.Errorf("pending nodes: %q, want %q", r.stdout, pending.ID)
		}
		if r := owner.mustRun(t, "--format", "json", "approve"); strings.Join(strings.Fields(r.stdout), "") != `["`+pending.ID+`"]` {
			t.Errorf("pending nodes in JSON: %q", r.stdout)
		}
		if r := owner.mustRun(t, "approve", pending.ID); !strings.Contains(r.stderr, "Approved node "+pending.ID+".") {
			t.Errorf("approve said %q", r.stderr)
		}
		if r := owner.mustRun(t, "approve"); r.stdout != "There are no nodes pending approval at this time.\n" {
			t.Errorf("after approval: %q", r.stdout)
		}
		if r := owner.mustRun(t, "--format", "json", "approve"); strings.TrimSpace(r.stdout) != "[]" {
			t.Errorf("no pending nodes in JSON: %q", r.stdout)
		}
		if r := owner.mustRun(t, "approve", pending.ID); !strings.Contains(r.stderr, "is STANDBY, approved already") {
			t.Errorf("approving again said %q", r.stderr)
		}
		owner.mustFail(t, []string{"approve", unknownID}, "node not found: "+unknownID)
		// The node can now finish joining.
		if err := pending.Commit(ctx); err != nil {
			t.Errorf("approved node cannot commit: %v", err)
		}
	})

	// roles returns the roles column of node id.
	roles := func(t *testing.T, id string) string {
		rows := tableRows(t, owner.mustRun(t, "node", "list", id).stdout, "NODE ID STATE ADDRESS HEALTH ROLES TPM VERSION HEARTBEAT")
		return rows[0][4]
	}

	t.Run("Roles", func(t *testing.T) {
		r := owner.mustRun(t, "node", "add", "role", "kw", worker1.ID, worker2.ID)
		for _, id := range []string{worker1.ID, worker2.ID} {
			if !strings.Contains(r.stderr, "Updated node "+id+".") {
				t.Errorf("add role output lacks node %s:\n%s", id, r.stderr)
			}
			if got := roles(t, id); got != "KubernetesWorker" {
				t.Errorf("node %s has roles %q after adding KubernetesWorker", id, got)
			}
		}
		owner.mustRun(t, "node", "remove", "role", "KUBERNETESWORKER", worker2.ID)
		if got := roles(t, worker2.ID); got != "-" {
			t.Errorf("node %s has roles %q after removing KubernetesWorker", worker2.ID, got)
		}
		if got := roles(t, worker1.ID); got != "KubernetesWorker" {
			t.Errorf("node %s has roles %q, want KubernetesWorker still", worker1.ID, got)
		}
		r = owner.mustFail(t, []string{"node", "add", "role", "KubernetesController", worker1.ID, unknownID}, "could not update 2 of 2 nodes")
		for _, want := range []string{"Could not update node " + worker1.ID, "ConsensusMember", "Could not update node " + unknownID, "NotFound"} {
			if !strings.Contains(r.stderr, want) {
				t.Errorf("failed role update output lacks %q:\n%s", want, r.stderr)
			}
		}
	})

	t.Run("Labels", func(t *testing.T) {
		if r := owner.mustRun(t, "node", "label", worker1.ID, "example.com/rack=a12", "zone=west"); r.stdout != "example.com/rack=a12\nzone=west\n" {
			t.Errorf("labels after setting: %q", r.stdout)
		}
		if r := owner.mustRun(t, "node", "label", worker1.ID, "-zone", "tier="); r.stdout != "example.com/rack=a12\ntier=\n" {
			t.Errorf("labels after removing zone: %q", r.stdout)
		}
		var labels map[string]string
		r := owner.mustRun(t, "--format", "json", "node", "label", worker1.ID, "tier=gold")
		if err := json.Unmarshal([]byte(r.stdout), &labels); err != nil {
			t.Fatal(err)
		}
		if want := map[string]string{"example.com/rack": "a12", "tier": "gold"}; !maps.Equal(labels, want) {
			t.Errorf("labels in JSON: %v, want %v", labels, want)
		}
		owner.mustFail(t, []string{"node", "label", worker1.ID, "zone=a", "-zone"}, `label "zone" is changed twice`)
		owner.mustFail(t, []string{"node", "label", unknownID, "zone=a"}, "NotFound")
	})

	t.Run("Logs", func(t *testing.T) {
		entries := func(conv func(*logtree.LogEntry) string) string {
			var b strings.Builder
			for _, p := range mgmt.backlog {
				e, err := logtree.LogEntryFromProto(p)
				if err != nil {
					t.Fatal(err)
				}
				b.WriteString(conv(e) + "\n")
			}
			return b.String()
		}
		r := owner.mustRun(t, "node", "logs", managed.ID)
		if want := entries((*logtree.LogEntry).String); r.stdout != want {
			t.Errorf("logs:\n%s\nwant:\n%s", r.stdout, want)
		}
		for _, want := range []string{"=== Logs from " + managed.ID + " (" + managed.Host + "):", "=== Done."} {
			if !strings.Contains(r.stderr, want) {
				t.Errorf("logs status lacks %q:\n%s", want, r.stderr)
			}
		}
		withChildren := &cpb.LogFilter{Filter: &cpb.LogFilter_WithChildren_{WithChildren: &cpb.LogFilter_WithChildren{}}}
		want := &apb.GetLogsRequest{
			Filters:     []*cpb.LogFilter{withChildren},
			BacklogMode: apb.GetLogsRequest_BACKLOG_MODE_ALL,
			StreamMode:  apb.GetLogsRequest_STREAM_MODE_DISABLE,
		}
		if diff := cmp.Diff(want, mgmt.lastLogsRequest(), protocmp.Transform()); diff != "" {
			t.Errorf("logs request (-want +got):\n%s", diff)
		}

		r = owner.mustRun(t, "node", "logs", "--dn", "root.network", "--exact", "--follow", "--backlog", "5", "--min-severity", "warning", "-c", managed.ID)
		if !strings.Contains(r.stdout, "13:31:00 W root.net: Link is down\n") || !strings.Contains(r.stdout, "13:30:45 I root.net.dhcp: Got a lease") {
			t.Errorf("concise logs with stream:\n%s", r.stdout)
		}
		want = &apb.GetLogsRequest{
			Dn: "root.network",
			Filters: []*cpb.LogFilter{{Filter: &cpb.LogFilter_LeveledWithMinimumSeverity_{
				LeveledWithMinimumSeverity: &cpb.LogFilter_LeveledWithMinimumSeverity{Minimum: lpb.Severity_WARNING},
			}}},
			BacklogMode:  apb.GetLogsRequest_BACKLOG_MODE_COUNT,
			BacklogCount: 5,
			StreamMode:   apb.GetLogsRequest_STREAM_MODE_UNBUFFERED,
		}
		if diff := cmp.Diff(want, mgmt.lastLogsRequest(), protocmp.Transform()); diff != "" {
			t.Errorf("logs request (-want +got):\n%s", diff)
		}

		r = owner.mustRun(t, "--format", "json", "node", "logs", managed.ID)
		lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
		if len(lines) != len(mgmt.backlog) {
			t.Fatalf("%d JSON lines, want %d:\n%s", len(lines), len(mgmt.backlog), r.stdout)
		}
		for i, l := range lines {
			got := &lpb.LogEntry{}
			if err := protojson.Unmarshal([]byte(l), got); err != nil {
				t.Fatalf("line %d: %v", i, err)
			}
			if !proto.Equal(got, mgmt.backlog[i]) {
				t.Errorf("line %d is %v, want %v", i, got, mgmt.backlog[i])
			}
		}

		fresh, err := cluster.NewNode(curatortest.NodeOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := fresh.Register(ctx); err != nil {
			t.Fatal(err)
		}
		owner.mustFail(t, []string{"node", "logs", fresh.ID}, "has not reported an address")
		owner.mustFail(t, []string{"node", "logs", unknownID}, "node not found: "+unknownID)
	})

	t.Run("Power", func(t *testing.T) {
		if r := owner.mustRun(t, "node", "reboot", managed.ID); !strings.Contains(r.stderr, "Node "+managed.ID+" is rebooting.") {
			t.Errorf("reboot said %q", r.stderr)
		}
		if r := owner.mustRun(t, "node", "poweroff", managed.ID); !strings.Contains(r.stderr, "Node "+managed.ID+" is powering off.") {
			t.Errorf("poweroff said %q", r.stderr)
		}
		// A node at the address of another is not taken for it.
		impostor, err := cluster.AddNode(ctx, curatortest.NodeOptions{Host: managed.Host})
		if err != nil {
			t.Fatal(err)
		}
		owner.mustFail(t, []string{"node", "reboot", impostor.ID}, "server is node "+managed.ID+", want "+impostor.ID)
		mgmt.mu.Lock()
		defer mgmt.mu.Unlock()
		want := []apb.RebootRequest_Type{apb.RebootRequest_TYPE_FIRMWARE, apb.RebootRequest_TYPE_POWER_OFF}
		if !slices.Equal(mgmt.reboots, want) {
			t.Errorf("node was asked for %v, want %v", mgmt.reboots, want)
		}
	})

	t.Run("Mesh", func(t *testing.T) {
		r := owner.mustRun(t, "node", "mesh", managed.ID)
		self, peers, ok := strings.Cut(r.stdout, "\n\n")
		if !ok {
			t.Fatalf("no blank line between the node and its peers:\n%s", r.stdout)
		}
		for _, want := range [][]string{
			{"Node ID:", managed.ID},
			{"WireGuard key:", mgmt.mesh.WireguardPubkey},
			{"Mesh address:", "10.192.0.2"},
			{"Listen port:", "7838"},
		} {
			if !slices.ContainsFunc(strings.Split(self, "\n"), func(l string) bool { return slices.Equal(columns(l), want) }) {
				t.Errorf("mesh status lacks the line %q:\n%s", want, r.stdout)
			}
		}
		lines := strings.Split(strings.TrimSpace(peers), "\n")
		if len(lines) != 3 || !slices.Equal(columns(lines[0]), []string{"PEER", "ENDPOINT", "ALLOWED PREFIXES", "LAST HANDSHAKE", "RECEIVED", "SENT"}) {
			t.Fatalf("peer table is not a header and two peers:\n%s", peers)
		}
		first, second := columns(lines[1]), columns(lines[2])
		if len(first) != 6 || first[0] != mgmt.mesh.Peers[0].NodeId || first[2] != "10.1.0.3/32,10.192.0.3/32,10.200.1.0/24" ||
			!strings.HasSuffix(first[3], "s ago") || first[4] != "1.5 KiB" || first[5] != "3 MiB" {
			t.Errorf("first peer: %q", first)
		}
		if want := []string{mgmt.mesh.Peers[1].NodeId, "10.1.0.4:7838", "10.1.0.4/32,10.192.0.4/32", "never", "0 B", "0 B"}; !slices.Equal(second, want) {
			t.Errorf("second peer: %q, want %q", second, want)
		}

		r = owner.mustRun(t, "--format", "json", "node", "mesh", managed.ID)
		got := &apb.GetMeshStatusResponse{}
		if err := protojson.Unmarshal([]byte(r.stdout), got); err != nil {
			t.Fatalf("JSON output: %v\n%s", err, r.stdout)
		}
		if !proto.Equal(got, mgmt.mesh) {
			t.Errorf("JSON output is %v, want %v", got, mgmt.mesh)
		}
		// Scripts see the field names of the proto.
		var fields struct {
			WireguardPubkey string `json:"wireguard_pubkey"`
			MeshAddress     string `json:"mesh_address"`
			ListenPort      int    `json:"listen_port"`
			Peers           []struct {
				NodeID        string  `json:"node_id"`
				LastHandshake *string `json:"last_handshake"`
				ReceivedBytes string  `json:"received_bytes"`
			} `json:"peers"`
		}
		if err := json.Unmarshal([]byte(r.stdout), &fields); err != nil {
			t.Fatal(err)
		}
		if fields.MeshAddress != "10.192.0.2" || fields.ListenPort != 7838 || len(fields.Peers) != 2 ||
			fields.Peers[0].LastHandshake == nil || fields.Peers[1].LastHandshake != nil || fields.Peers[0].ReceivedBytes != "1536" {
			t.Errorf("JSON fields: %+v\n%s", fields, r.stdout)
		}

		owner.mustFail(t, []string{"node", "mesh", unknownID}, "node not found: "+unknownID)
	})

	t.Run("Probe", func(t *testing.T) {
		mgmt.takeProbeRequests()
		r := owner.mustRun(t, "node", "probe", managed.ID, worker1.ID)
		var lines [][]string
		for _, l := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
			lines = append(lines, columns(l))
		}
		wantLines := [][]string{
			{"Path:", "mesh"},
			{"Address:", fakeMeshProbeAddress},
			{"Bytes:", "16777216 (16 MiB)"},
			{"Duration:", "2s"},
			{"Throughput:", "8.4 MB/s (67.1 Mbit/s)"},
		}
		if !slices.EqualFunc(lines, wantLines, slices.Equal) {
			t.Errorf("probe output:\n%s\nwant lines %q", r.stdout, wantLines)
		}
		if want := "Sending 16 MiB from " + managed.ID + " to " + worker1.ID + " through the mesh path..."; !strings.Contains(r.stderr, want) {
			t.Errorf("probe status lacks %q:\n%s", want, r.stderr)
		}
		want := []*apb.ProbePeerRequest{{NodeId: worker1.ID, Path: apb.ProbePeerRequest_PATH_MESH, Bytes: 16 << 20}}
		if diff := cmp.Diff(want, mgmt.takeProbeRequests(), protocmp.Transform()); diff != "" {
			t.Errorf("probe requests (-want +got):\n%s", diff)
		}

		r = owner.mustRun(t, "node", "probe", "--path", "both", "--bytes", "64MiB", managed.ID, worker1.ID)
		for _, want := range []string{fakeMeshProbeAddress, fakeExternalProbeAddress, "67108864 (64 MiB)", "33.6 MB/s (268.4 Mbit/s)", "67.1 MB/s (536.9 Mbit/s)", "\nMesh/external throughput: 0.50\n"} {
			if !strings.Contains(r.stdout, want) {
				t.Errorf("probe of both paths lacks %q:\n%s", want, r.stdout)
			}
		}
		want = []*apb.ProbePeerRequest{
			{NodeId: worker1.ID, Path: apb.ProbePeerRequest_PATH_MESH, Bytes: 64 << 20},
			{NodeId: worker1.ID, Path: apb.ProbePeerRequest_PATH_EXTERNAL, Bytes: 64 << 20},
		}
		if diff := cmp.Diff(want, mgmt.takeProbeRequests(), protocmp.Transform()); diff != "" {
			t.Errorf("probe requests (-want +got):\n%s", diff)
		}

		r = owner.mustRun(t, "--format", "json", "node", "probe", "--path", "both", "--bytes", "1MiB", managed.ID, worker1.ID)
		var report map[string]any
		if err := json.Unmarshal([]byte(r.stdout), &report); err != nil {
			t.Fatalf("JSON output: %v\n%s", err, r.stdout)
		}
		probes, _ := report["probes"].([]any)
		if report["from"] != managed.ID || report["to"] != worker1.ID || report["mesh_to_external_ratio"] != 0.5 || len(probes) != 2 {
			t.Fatalf("JSON report: %v", report)
		}
		wantProbe := map[string]any{"path": "mesh", "address": fakeMeshProbeAddress, "bytes": float64(1 << 20), "duration_seconds": 2.0, "bytes_per_second": float64(1<<20) / 2}
		if diff := cmp.Diff(wantProbe, probes[0]); diff != "" {
			t.Errorf("JSON mesh probe (-want +got):\n%s", diff)
		}
		if p, _ := probes[1].(map[string]any); p["path"] != "external" || p["address"] != fakeExternalProbeAddress {
			t.Errorf("JSON external probe: %v", probes[1])
		}
		r = owner.mustRun(t, "--format", "json", "node", "probe", "--path", "external", managed.ID, worker1.ID)
		if strings.Contains(r.stdout, "mesh_to_external_ratio") {
			t.Errorf("JSON of one probe has a ratio:\n%s", r.stdout)
		}
		mgmt.takeProbeRequests()

		owner.mustFail(t, []string{"node", "probe", unknownID, worker1.ID}, "node not found: "+unknownID)
		owner.mustFail(t, []string{"node", "probe", managed.ID, unknownID}, "node not found: "+unknownID)
		if got := mgmt.takeProbeRequests(); len(got) != 0 {
			t.Errorf("probes were sent for unknown nodes: %v", got)
		}
	})

	t.Run("DecommissionAndDelete", func(t *testing.T) {
		owner.mustFail(t, []string{"node", "delete", worker2.ID}, "is UP; decommission it first")
		owner.mustFail(t, []string{"node", "decommission", worker1.ID}, "still has roles")
		if r := owner.mustRun(t, "node", "decommission", worker2.ID); !strings.Contains(r.stderr, "Decommissioned node "+worker2.ID) {
			t.Errorf("decommission said %q", r.stderr)
		}
		rows := tableRows(t, owner.mustRun(t, "node", "list", worker2.ID).stdout, "NODE ID STATE ADDRESS HEALTH ROLES TPM VERSION HEARTBEAT")
		if rows[0][1] != "DECOMMISSIONED" {
			t.Errorf("decommissioned node is %s", rows[0][1])
		}
		owner.mustRun(t, "node", "delete", worker2.ID)
		owner.mustFail(t, []string{"node", "delete", "--bypass-not-decommissioned", worker1.ID}, "still has roles")
		owner.mustRun(t, "node", "delete", "--bypass-not-decommissioned", "--bypass-has-roles", worker1.ID)
		for _, id := range []string{worker1.ID, worker2.ID} {
			owner.mustFail(t, []string{"node", "describe", id}, "node not found")
		}
		owner.mustFail(t, []string{"node", "delete", unknownID}, "NotFound")
	})

	t.Run("ClusterConfigure", func(t *testing.T) {
		r := owner.mustRun(t, "cluster", "configure", "get")
		for _, want := range []string{
			"cluster_domain: cluster.internal\n",
			"tpm_mode: required\n",
			"storage_security_policy: needs-encryption-and-authentication\n",
			"kubernetes.node_labels_to_synchronize: \n",
		} {
			if !strings.Contains(r.stdout, want) {
				t.Errorf("configuration lacks %q:\n%s", want, r.stdout)
			}
		}
		const field = "kubernetes.node_labels_to_synchronize"
		if r := owner.mustRun(t, "cluster", "configure", "set", field, `^example\.com/`, "^tier$"); r.stdout != "^example\\.com/\n^tier$\n" {
			t.Errorf("set printed %q", r.stdout)
		}
		if r := owner.mustRun(t, "cluster", "configure", "get", field); r.stdout != "^example\\.com/\n^tier$\n" {
			t.Errorf("get printed %q", r.stdout)
		}
		var values map[string][]string
		r = owner.mustRun(t, "--format", "json", "cluster", "configure", "get", field)
		if err := json.Unmarshal([]byte(r.stdout), &values); err != nil {
			t.Fatal(err)
		}
		if got := values[field]; !slices.Equal(got, []string{`^example\.com/`, "^tier$"}) {
			t.Errorf("JSON value %q", got)
		}
		owner.mustFail(t, []string{"cluster", "configure", "set", field, "(unclosed"}, `invalid regular expression "(unclosed"`)
		owner.mustFail(t, []string{"cluster", "configure", "set", "tpm_mode", "disabled"}, "tpm_mode is fixed at bootstrap")
		owner.mustFail(t, []string{"cluster", "configure", "get", "kubernetes"}, `unknown configuration field "kubernetes"`)
		owner.mustRun(t, "cluster", "configure", "set", field)
		if r := owner.mustRun(t, "cluster", "configure", "get", field); r.stdout != "" {
			t.Errorf("after clearing: %q", r.stdout)
		}
	})

	t.Run("CertExport", func(t *testing.T) {
		r := owner.mustRun(t, "cert", "export")
		if !strings.Contains(r.stderr, "owner.crt") || !strings.Contains(r.stderr, "owner.key") {
			t.Errorf("export said %q", r.stderr)
		}
		keyPath := filepath.Join(owner.workDir, "owner.key")
		fi, err := os.Stat(keyPath)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("key file mode %v, want 0600", fi.Mode().Perm())
		}
		keyPEM, _ := pem.Decode(mustRead(t, keyPath))
		key, err := x509.ParsePKCS8PrivateKey(keyPEM.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		if !cluster.OwnerKey.Equal(key) {
			t.Errorf("exported key is not the owner key")
		}
		certPEM, _ := pem.Decode(mustRead(t, filepath.Join(owner.workDir, "owner.crt")))
		ownerPEM, _ := pem.Decode(mustRead(t, filepath.Join(owner.config, "owner.pem")))
		if certPEM == nil || certPEM.Type != "CERTIFICATE" || !bytes.Equal(certPEM.Bytes, ownerPEM.Bytes) {
			t.Errorf("exported certificate is not the owner certificate")
		}
		owner.mustFail(t, []string{"cert", "export"}, "owner.crt already exists")
	})

	t.Run("InitOwnerAndBootstrapParameters", func(t *testing.T) {
		c := newCLI(t)
		r := c.mustRun(t, "cluster", "init-owner")
		pub := strings.TrimSpace(r.stdout)
		if len(pub) != 2*ed25519.PublicKeySize || !strings.Contains(r.stderr, "Created owner key") {
			t.Errorf("init-owner: %v", r)
		}
		if r := c.mustRun(t, "cluster", "init-owner"); strings.TrimSpace(r.stdout) != pub || !strings.Contains(r.stderr, "Using existing owner key") {
			t.Errorf("second init-owner: %v", r)
		}
		out := filepath.Join(t.TempDir(), "params.pb")
		c.mustRun(t, "node", "params", "--bootstrap", "--cluster", "test.internal", "--tpm-mode", "disabled",
			"--storage-security", "needs-insecure", "--label", "rack=a1", "-o", out)
		params := &apb.NodeParameters{}
		if err := proto.Unmarshal(mustRead(t, out), params); err != nil {
			t.Fatal(err)
		}
		want := &apb.NodeParameters{Cluster: &apb.NodeParameters_ClusterBootstrap_{ClusterBootstrap: &apb.NodeParameters_ClusterBootstrap{
			OwnerPublicKey: mustHex(t, pub),
			InitialClusterConfiguration: &cpb.ClusterConfiguration{
				ClusterDomain:         "test.internal",
				TpmMode:               cpb.ClusterConfiguration_TPM_MODE_DISABLED,
				StorageSecurityPolicy: cpb.ClusterConfiguration_STORAGE_SECURITY_POLICY_NEEDS_INSECURE,
			},
			Labels: &cpb.NodeLabels{Pairs: []*cpb.NodeLabels_Pair{{Key: "rack", Value: "a1"}}},
		}}}
		if diff := cmp.Diff(want, params, protocmp.Transform()); diff != "" {
			t.Errorf("bootstrap parameters (-want +got):\n%s", diff)
		}
		c.mustFail(t, []string{"node", "params", "--bootstrap", "--cluster", "Not_A_Domain", "-o", out}, "cluster domain")
		c.mustFail(t, []string{"node", "params", "--bootstrap", "--cluster", "a.internal", "--tpm-mode", "maybe", "-o", out}, `unknown TPM mode "maybe"`)
	})

	t.Run("RegisterParameters", func(t *testing.T) {
		out := filepath.Join(t.TempDir(), "params.pb")
		owner.mustRun(t, "node", "params", "--register", "--label", "rack=c3", "-o", out)
		params := &apb.NodeParameters{}
		if err := proto.Unmarshal(mustRead(t, out), params); err != nil {
			t.Fatal(err)
		}
		reg := params.GetClusterRegister()
		ticket, err := cluster.RegisterTicket(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(reg.GetRegisterTicket(), ticket) {
			t.Errorf("register ticket is not the cluster's")
		}
		if !bytes.Equal(reg.GetCaCertificate(), cluster.CA.Raw) {
			t.Errorf("CA certificate is not the cluster's")
		}
		found := false
		for _, n := range reg.GetClusterDirectory().GetNodes() {
			if n.Id == curatorID && len(n.Addresses) == 1 && n.Addresses[0].Host == endpoint {
				found = true
			}
		}
		if !found {
			t.Errorf("cluster directory lacks the curator: %v", reg.GetClusterDirectory())
		}
		if node := reg.GetLabels().GetPairs(); len(node) != 1 || node[0].Key != "rack" || node[0].Value != "c3" {
			t.Errorf("labels: %v", reg.GetLabels())
		}
	})

	t.Run("Completion", func(t *testing.T) {
		if r := owner.mustRun(t, "completion", "bash"); !strings.Contains(r.stdout, "metroctl") {
			t.Errorf("bash completion does not mention metroctl")
		}
	})
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestIsTerminal(t *testing.T) {
	devNull, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer devNull.Close()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	// The master side of a pseudo-terminal, as good a terminal as any.
	pty, err := os.OpenFile("/dev/ptmx", os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer pty.Close()
	for _, tc := range []struct {
		name string
		f    *os.File
		want bool
	}{{"/dev/null", devNull, false}, {"pipe", r, false}, {"pseudo-terminal", pty, true}} {
		if got := isTerminal(tc.f); got != tc.want {
			t.Errorf("%s: isTerminal = %v, want %v", tc.name, got, tc.want)
		}
	}
}
