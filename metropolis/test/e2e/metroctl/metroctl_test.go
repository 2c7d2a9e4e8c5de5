// Package metroctl is the end-to-end suite of metroctl, the operator's
// command-line tool: a cluster of two nodes, launched as launch-cluster
// does, which an operator holding nothing but the owner key takes ownership
// of, then lists, inspects and manages with the real metroctl binary,
// reaching the nodes through the switch's SOCKS proxy as from a
// workstation.
//
// metroctl is judged by what an operator or a script reads: its tables,
// "key: value" blocks, JSON and PEM files, parsed rather than grepped where
// they have a structure, and the files it keeps in its configuration
// directory. Calls that must fail have to exit with status 1, print no data
// and say in their error what is wrong and what to do. The steps run in
// order and stop at the first failure, as each builds on the cluster the
// previous ones left.
package metroctl

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"metropolis.dev/metropolis/cli/metroctl/core"
	"metropolis.dev/metropolis/node/core/identity"
	"metropolis.dev/metropolis/test/e2e/e2etest"
	"metropolis.dev/metropolis/test/launch"
	"metropolis.dev/osbase/pki/pkitest"
	"metropolis.dev/osbase/test/qemu"
)

// Base timeouts under TCG on 2 cores (see qemu.Timeout).
const (
	// suiteTimeout bounds the whole suite, launch included.
	suiteTimeout = 30 * time.Minute
	// callTimeout bounds one metroctl call.
	callTimeout = 2 * time.Minute
	// connectTimeout is how long metroctl waits for the cluster to become
	// reachable (--connect-timeout); its default is meant for an idle
	// workstation, not for emulated nodes on a busy machine.
	connectTimeout = time.Minute
)

// maxHeartbeatAge is the most time since its last heartbeat that node list
// may show for a HEALTHY node: nodes send one every few seconds, and the
// curator calls them unhealthy well before this.
const maxHeartbeatAge = 30 * time.Second

// operator runs metroctl as an operator at a workstation would: with one
// configuration directory, through the switch's SOCKS proxy.
type operator struct {
	metroctl string
	// flags are the global flags every call starts with.
	flags []string
	// dir is the calls' working directory; empty is the test's.
	dir string
}

// newOperator returns an operator with the configuration directory config,
// who reaches the cluster through the proxy and endpoints of
// c.MetroctlFlags.
func newOperator(c *e2etest.Cluster, config string) *operator {
	flags := []string{"--config", config, "--connect-timeout", qemu.Timeout(connectTimeout).String()}
	launchFlags := c.MetroctlFlags()
	for i := 0; i+1 < len(launchFlags); i += 2 {
		if launchFlags[i] != "--config" {
			flags = append(flags, launchFlags[i], launchFlags[i+1])
		}
	}
	return &operator{metroctl: c.Metroctl, flags: flags}
}

// withoutEndpoints returns o without --endpoints.
func (o *operator) withoutEndpoints() *operator {
	res := *o
	res.flags = nil
	for i := 0; i+1 < len(o.flags); i += 2 {
		if o.flags[i] != "--endpoints" {
			res.flags = append(res.flags, o.flags[i], o.flags[i+1])
		}
	}
	return &res
}

// in returns o working in dir.
func (o *operator) in(dir string) *operator {
	res := *o
	res.dir = dir
	return &res
}

// result is what a metroctl call did.
type result struct {
	// cmdline is the call without the global flags, for messages.
	cmdline  string
	stdout   string
	stderr   string
	exitCode int
}

func (r result) String() string {
	return fmt.Sprintf("%s: exit status %d\n--- stdout:\n%s--- stderr:\n%s", r.cmdline, r.exitCode, r.stdout, r.stderr)
}

// run runs metroctl with args, and fails t if it could not be started or
// did not end within callTimeout.
func (o *operator) run(t *testing.T, ctx context.Context, args ...string) result {
	t.Helper()
	timeout := qemu.Timeout(callTimeout)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, o.metroctl, append(slices.Clone(o.flags), args...)...)
	cmd.Dir = o.dir
	// A pipe, unlike the terminal or /dev/null (both character devices),
	// tells metroctl that nobody is there to answer questions, as in a
	// script.
	cmd.Stdin = strings.NewReader("")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := result{cmdline: "metroctl " + strings.Join(args, " "), stdout: stdout.String(), stderr: stderr.String()}
	var exit *exec.ExitError
	switch {
	case ctx.Err() != nil:
		t.Fatalf("%s did not end within %s:\n%s", r.cmdline, timeout, r)
	case errors.As(err, &exit):
		r.exitCode = exit.ExitCode()
	case err != nil:
		t.Fatalf("running %s: %v", r.cmdline, err)
	}
	return r
}

// succeed runs metroctl with args and fails t unless it succeeded.
func (o *operator) succeed(t *testing.T, ctx context.Context, args ...string) result {
	t.Helper()
	r := o.run(t, ctx, args...)
	if r.exitCode != 0 {
		t.Fatalf("%s failed:\n%s", r.cmdline, r)
	}
	return r
}

// fail runs metroctl with args and fails t unless it failed the way a
// refused command must: exit status 1, nothing on standard output and an
// error on standard error that contains each of want.
func (o *operator) fail(t *testing.T, ctx context.Context, want []string, args ...string) result {
	t.Helper()
	r := o.run(t, ctx, args...)
	if r.exitCode != 1 {
		t.Fatalf("%s: want exit status 1, a refusal:\n%s", r.cmdline, r)
	}
	if r.stdout != "" {
		t.Errorf("%s failed but printed data:\n%s", r.cmdline, r)
	}
	for _, w := range want {
		if !strings.Contains(r.stderr, w) {
			t.Errorf("%s: its error does not say %q:\n%s", r.cmdline, w, r.stderr)
		}
	}
	return r
}

// wantContains fails t unless out, which what produced, contains each of
// want.
func wantContains(t *testing.T, what, out string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Errorf("%s does not contain %q:\n%s", what, w, out)
		}
	}
}

// cellSeparator separates the cells of metroctl's tables, which pad
// columns with at least three spaces, so that cells may contain single
// ones ("NODE ID").
var cellSeparator = regexp.MustCompile(` {3,}`)

// parseTable parses a table metroctl printed into one map per row, from
// column header to cell.
func parseTable(out string) ([]map[string]string, error) {
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if lines[0] == "" {
		return nil, errors.New("no table: the output is empty")
	}
	header := cellSeparator.Split(lines[0], -1)
	var rows []map[string]string
	for _, l := range lines[1:] {
		cells := cellSeparator.Split(l, -1)
		if len(cells) != len(header) {
			return nil, fmt.Errorf("row %q has %d cells, the header %d", l, len(cells), len(header))
		}
		row := map[string]string{}
		for i, h := range header {
			row[h] = cells[i]
		}
		rows = append(rows, row)
	}
	return rows, nil
}

// nodeTable runs node list with args and returns its rows by node ID,
// failing t if the table is not what node list prints.
func nodeTable(t *testing.T, ctx context.Context, o *operator, args ...string) map[string]map[string]string {
	t.Helper()
	r := o.succeed(t, ctx, append([]string{"node", "list"}, args...)...)
	return parseNodeTable(t, r.cmdline, r.stdout)
}

// nodeTableColumns are the columns of node list, in order.
var nodeTableColumns = []string{"NODE ID", "STATE", "ADDRESS", "HEALTH", "ROLES", "TPM", "VERSION", "HEARTBEAT"}

func parseNodeTable(t *testing.T, what, out string) map[string]map[string]string {
	t.Helper()
	header, _, _ := strings.Cut(out, "\n")
	if got := cellSeparator.Split(header, -1); !slices.Equal(got, nodeTableColumns) {
		t.Fatalf("%s: the table's columns are %q, want %q:\n%s", what, got, nodeTableColumns, out)
	}
	rows, err := parseTable(out)
	if err != nil {
		t.Fatalf("%s: %v:\n%s", what, err, out)
	}
	byID := map[string]map[string]string{}
	for _, r := range rows {
		byID[r["NODE ID"]] = r
	}
	return byID
}

// wantNodes fails t unless the IDs of nodes are exactly ids.
func wantNodes[V any](t *testing.T, what string, nodes map[string]V, ids ...string) {
	t.Helper()
	got := slices.Sorted(maps.Keys(nodes))
	want := slices.Sorted(slices.Values(ids))
	if !slices.Equal(got, want) {
		t.Errorf("%s shows nodes %q, want %q", what, got, want)
	}
}

// parseDetails parses what node describe prints for one node: "key: value"
// lines.
func parseDetails(out string) (map[string]string, error) {
	details := map[string]string{}
	for _, l := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		k, v, ok := strings.Cut(l, ":")
		if !ok {
			return nil, fmt.Errorf("line %q is no key: value line", l)
		}
		if _, dup := details[k]; dup {
			return nil, fmt.Errorf("key %q appears twice; is this more than one node?", k)
		}
		details[k] = strings.TrimSpace(v)
	}
	return details, nil
}

// describe runs node describe for the node id and returns its details.
func describe(t *testing.T, ctx context.Context, o *operator, id string) map[string]string {
	t.Helper()
	r := o.succeed(t, ctx, "node", "describe", id)
	details, err := parseDetails(r.stdout)
	if err != nil {
		t.Fatalf("%s: %v:\n%s", r.cmdline, err, r.stdout)
	}
	if details["Node ID"] != id {
		t.Fatalf("%s describes node %q:\n%s", r.cmdline, details["Node ID"], r.stdout)
	}
	return details
}

// list splits a list metroctl printed as one cell or value, where "-"
// stands for an empty list.
func list(v, sep string) []string {
	if v == "-" || v == "" {
		return nil
	}
	return strings.Split(v, sep)
}

// jsonNode is what the tests read of a node as metroctl prints it with
// --format json (protobuf JSON with the proto field names).
type jsonNode struct {
	ID     string `json:"id"`
	Pubkey []byte `json:"pubkey"`
	State  string `json:"state"`
	Health string `json:"health"`
	Status struct {
		ExternalAddress string `json:"external_address"`
	} `json:"status"`
}

// jsonLogEntry is what the tests read of a log entry as node logs prints it
// with --format json.
type jsonLogEntry struct {
	DN      string `json:"dn"`
	Leveled *struct {
		Lines []string `json:"lines"`
	} `json:"leveled"`
}

// parseLogEntries parses the output of node logs --format json: one entry
// per line.
func parseLogEntries(out string) ([]jsonLogEntry, error) {
	var entries []jsonLogEntry
	for _, l := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		if l == "" {
			continue
		}
		var e jsonLogEntry
		if err := json.Unmarshal([]byte(l), &e); err != nil {
			return nil, fmt.Errorf("line %q: %w", l, err)
		}
		entries = append(entries, e)
	}
	return entries, nil
}

// otherCA returns a CA certificate of no cluster.
func otherCA(t *testing.T) *x509.Certificate {
	return pkitest.CA(t, "Some Other Cluster CA")
}

// copyFile copies the file from to to, readable only by the user.
func copyFile(t *testing.T, from, to string) {
	t.Helper()
	data, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(to), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// readPEM returns the DER of the single PEM block of type typ in the file
// at path.
func readPEM(t *testing.T, path, typ string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	block, rest := pem.Decode(data)
	if block == nil || block.Type != typ {
		t.Fatalf("%s holds no PEM block of type %q:\n%s", path, typ, data)
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		t.Errorf("%s holds more than one PEM block", path)
	}
	return block.Bytes
}

func TestMetroctl(t *testing.T) {
	e2etest.Skip(t)
	ctx := e2etest.Context(t, suiteTimeout)
	c := e2etest.Launch(t, ctx, launch.ClusterOptions{NumNodes: 2})
	ids := c.NodeIDs
	addrs := []string{c.NodeAddress(0).String(), c.NodeAddress(1).String()}

	// The operator's own configuration, which TakeOwnership fills from the
	// owner key alone and the later steps use.
	cfg := core.Config{Dir: filepath.Join(t.TempDir(), "metroctl")}
	op := newOperator(c, cfg.Dir)
	launchCfg := core.Config{Dir: c.MetroctlDir}

	steps := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"TakeOwnership", func(t *testing.T) {
			// Without the owner key there is nothing to prove ownership
			// with, and nothing may be stored.
			empty := core.Config{Dir: t.TempDir()}
			newOperator(c, empty.Dir).withoutEndpoints().fail(t, ctx,
				[]string{"no owner key", empty.OwnerKeyPath(), "metroctl cluster init-owner"},
				"cluster", "takeownership", addrs[0], "--trust-on-first-use")
			if _, err := empty.TrustedCA(); !errors.Is(err, core.ErrNoTrustedCA) {
				t.Errorf("a takeownership without owner key stored a trusted CA (or: %v)", err)
			}

			copyFile(t, launchCfg.OwnerKeyPath(), cfg.OwnerKeyPath())
			op.fail(t, ctx, []string{"take ownership first", "cluster takeownership"}, "node", "list")

			// Nobody can be asked whether to trust the CA, and no flag says
			// to trust it anyway.
			fingerprint := core.Fingerprint(c.CA)
			op.withoutEndpoints().fail(t, ctx,
				[]string{"cluster CA not trusted", fingerprint, "nobody was asked", "--accept-ca", "--trust-on-first-use"},
				"cluster", "takeownership", addrs[0])
			if _, err := cfg.TrustedCA(); !errors.Is(err, core.ErrNoTrustedCA) {
				t.Fatalf("a refused CA was stored as trusted (or: %v)", err)
			}

			r := op.withoutEndpoints().succeed(t, ctx, "cluster", "takeownership", addrs[0], "--trust-on-first-use")
			if r.stdout != "" {
				t.Errorf("%s printed data, want only messages on standard error:\n%s", r.cmdline, r)
			}
			wantContains(t, r.cmdline+"'s messages", r.stderr,
				"Trusting cluster CA "+fingerprint, "trusted on first use", "You now own the cluster.", cfg.OwnerCertificatePath())
			ca, err := cfg.TrustedCA()
			if err != nil {
				t.Fatalf("after %s: %v", r.cmdline, err)
			}
			if !ca.Equal(c.CA) {
				t.Errorf("the stored CA is %s, not the cluster's %s", core.Fingerprint(ca), fingerprint)
			}
			owner, err := cfg.OwnerCertificate()
			if err != nil {
				t.Fatalf("after %s: %v", r.cmdline, err)
			}
			if err := owner.Leaf.CheckSignatureFrom(c.CA); err != nil {
				t.Errorf("the stored owner certificate is not issued by the cluster CA: %v", err)
			}
			if !owner.Leaf.Equal(c.Owner.Leaf) {
				t.Errorf("the cluster issued another owner certificate (serial %v) than at launch (serial %v)", owner.Leaf.SerialNumber, c.Owner.Leaf.SerialNumber)
			}

			// A later call authenticates with what was stored: no more
			// trust decisions, and no flag for them.
			r = op.succeed(t, ctx, "node", "list")
			if strings.Contains(r.stderr, "Fetching the cluster CA") {
				t.Errorf("%s fetched the CA again, although one is trusted:\n%s", r.cmdline, r.stderr)
			}
			wantNodes(t, r.cmdline, parseNodeTable(t, r.cmdline, r.stdout), ids...)
		}},
		{"Errors", func(t *testing.T) {
			op.withoutEndpoints().fail(t, ctx, []string{"no endpoints given", "--endpoints"}, "node", "list")
			op.fail(t, ctx, []string{`unknown --format "yaml"`, "--help"}, "node", "list", "--format", "yaml")

			// Nothing answers at a free address of the switch's network.
			op.withoutEndpoints().fail(t, ctx,
				[]string{"cluster unreachable", "10.1.0.250:", "Check that --endpoints"},
				"node", "list", "--endpoints", "10.1.0.250", "--connect-timeout", "5s")

			// A configuration that trusts another CA must not talk to this
			// cluster, nor start trusting its CA.
			wrong := core.Config{Dir: t.TempDir()}
			copyFile(t, cfg.OwnerKeyPath(), wrong.OwnerKeyPath())
			copyFile(t, cfg.OwnerCertificatePath(), wrong.OwnerCertificatePath())
			other := otherCA(t)
			if err := wrong.SaveTrustedCA(other); err != nil {
				t.Fatal(err)
			}
			newOperator(c, wrong.Dir).fail(t, ctx,
				[]string{"is not the trusted cluster", core.Fingerprint(c.CA), core.Fingerprint(other), "belongs to another cluster"},
				"node", "list")
			if ca, err := wrong.TrustedCA(); err != nil || !ca.Equal(other) {
				t.Errorf("after a CA mismatch, the trusted CA changed (%v)", err)
			}
		}},
		{"List", func(t *testing.T) {
			rows := nodeTable(t, ctx, op)
			wantNodes(t, "node list", rows, ids...)
			wantRoles := []string{"ConsensusMember,KubernetesController", "-"}
			version := regexp.MustCompile(`^v\d+\.\d+\.\d+\S*$`)
			for i, id := range ids {
				row := rows[id]
				if row == nil {
					continue
				}
				want := map[string]string{"STATE": "UP", "ADDRESS": addrs[i], "HEALTH": "HEALTHY", "ROLES": wantRoles[i], "TPM": "yes"}
				for col, v := range want {
					if row[col] != v {
						t.Errorf("node list shows node %d (%s) with %s %q, want %q", i, id, col, row[col], v)
					}
				}
				if !version.MatchString(row["VERSION"]) {
					t.Errorf("node list shows node %d (%s) with VERSION %q, want a release version (vX.Y.Z...)", i, id, row["VERSION"])
				}
				hb, err := time.ParseDuration(row["HEARTBEAT"])
				if err != nil || hb < 0 || hb > maxHeartbeatAge {
					t.Errorf("node list shows node %d (%s) with HEARTBEAT %q, want a duration from 0 to %s", i, id, row["HEARTBEAT"], maxHeartbeatAge)
				}
			}
			if v0, v1 := rows[ids[0]]["VERSION"], rows[ids[1]]["VERSION"]; v0 != v1 {
				t.Errorf("the nodes, booted from one image, run versions %q and %q", v0, v1)
			}

			wantNodes(t, "node list <node 1>", nodeTable(t, ctx, op, ids[1]), ids[1])
			filter := fmt.Sprintf("node.status.external_address == %q", addrs[1])
			wantNodes(t, "node list --filter "+filter, nodeTable(t, ctx, op, "--filter", filter), ids[1])
			wantNodes(t, "node list --filter 'node.state == NODE_STATE_NEW'", nodeTable(t, ctx, op, "--filter", "node.state == NODE_STATE_NEW"))
			op.fail(t, ctx, []string{"InvalidArgument", "invalid filter", "not bool"}, "node", "list", "--filter", "node.state")
			missing := "metropolis-00000000000000000000000000000000"
			op.fail(t, ctx, []string{"node not found in the cluster", missing}, "node", "list", ids[0], missing)

			file := filepath.Join(t.TempDir(), "nodes.txt")
			if r := op.succeed(t, ctx, "node", "list", "--output", file); r.stdout != "" {
				t.Errorf("%s also printed to standard output:\n%s", r.cmdline, r.stdout)
			}
			written, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			wantNodes(t, "the file of node list --output", parseNodeTable(t, file, string(written)), ids...)

			r := op.succeed(t, ctx, "node", "list", "--format", "json")
			var nodes []jsonNode
			if err := json.Unmarshal([]byte(r.stdout), &nodes); err != nil {
				t.Fatalf("%s: %v:\n%s", r.cmdline, err, r.stdout)
			}
			byID := map[string]jsonNode{}
			for _, n := range nodes {
				byID[n.ID] = n
			}
			wantNodes(t, r.cmdline, byID, ids...)
			for i, id := range ids {
				n := byID[id]
				if n.State != "NODE_STATE_UP" || n.Health != "HEALTH_HEALTHY" || n.Status.ExternalAddress != addrs[i] {
					t.Errorf("%s shows node %d (%s) as %s, %s at %q; want NODE_STATE_UP, HEALTH_HEALTHY at %s", r.cmdline, i, id, n.State, n.Health, n.Status.ExternalAddress, addrs[i])
				}
			}

			for i, id := range ids {
				details := describe(t, ctx, op, id)
				pub, err := hex.DecodeString(details["Public key"])
				if err != nil || len(pub) != ed25519.PublicKeySize {
					t.Errorf("node describe %s shows public key %q, want an ed25519 key in hex", id, details["Public key"])
				} else {
					if got := identity.NodeID(pub); got != id {
						t.Errorf("node describe %s shows a public key of node %s", id, got)
					}
					if !bytes.Equal(pub, byID[id].Pubkey) {
						t.Errorf("node describe %s shows another public key than node list --format json", id)
					}
				}
				label := fmt.Sprintf("%s=%d", launch.NodeNumberLabel, i)
				if labels := list(details["Labels"], ", "); !slices.Contains(labels, label) {
					t.Errorf("node describe %s shows labels %q, want %s among them", id, labels, label)
				}
				if details["State"] != "UP" || details["Address"] != addrs[i] {
					t.Errorf("node describe %s shows state %q at %q, want UP at %s", id, details["State"], details["Address"], addrs[i])
				}
			}
		}},
		{"Logs", func(t *testing.T) {
			for i, id := range ids {
				r := op.succeed(t, ctx, "node", "logs", id)
				wantContains(t, fmt.Sprintf("the logs of node %d (%s)", i, id), r.stdout, "Cluster enrolment done.")
				wantContains(t, r.cmdline+"'s messages", r.stderr, fmt.Sprintf("=== Logs from %s (%s):", id, addrs[i]), "=== Done.")
			}

			logs := func(args ...string) []jsonLogEntry {
				t.Helper()
				r := op.succeed(t, ctx, append([]string{"node", "logs", ids[1], "--format", "json"}, args...)...)
				entries, err := parseLogEntries(r.stdout)
				if err != nil {
					t.Fatalf("%s: %v", r.cmdline, err)
				}
				return entries
			}
			enrolled := false
			for _, e := range logs("--dn", "root.cluster", "--exact") {
				if e.DN != "root.cluster" {
					t.Errorf("node logs --dn root.cluster --exact shows an entry of %q", e.DN)
				}
				if e.Leveled != nil && slices.Contains(e.Leveled.Lines, "Cluster enrolment done.") {
					enrolled = true
				}
			}
			if !enrolled {
				t.Errorf("node logs --dn root.cluster --exact does not show that enrolment was done")
			}
			// The root logger has entries of its own (the node's version and
			// disk) and children (root.cluster, at least), which --exact
			// leaves out.
			rootEntries := logs("--dn", "root", "--exact")
			if len(rootEntries) == 0 {
				t.Errorf("node logs --dn root --exact shows no entries")
			}
			for _, e := range rootEntries {
				if e.DN != "root" {
					t.Errorf("node logs --dn root --exact shows an entry of %q", e.DN)
				}
			}
			if n := len(logs("--backlog", "3")); n != 3 {
				t.Errorf("node logs --backlog 3 shows %d entries, want 3", n)
			}

			op.fail(t, ctx, []string{"--backlog -5", "want -1 (all), 0 (none) or a number of entries"}, "node", "logs", ids[1], "--backlog", "-5")
			missing := "metropolis-00000000000000000000000000000000"
			op.fail(t, ctx, []string{"node not found", missing}, "node", "logs", missing)
		}},
		{"Roles", func(t *testing.T) {
			id := ids[1]
			r := op.succeed(t, ctx, "node", "add", "role", "KubernetesWorker", id)
			wantContains(t, r.cmdline+"'s messages", r.stderr, "Updated node "+id+".")
			if roles := list(describe(t, ctx, op, id)["Roles"], ", "); !slices.Equal(roles, []string{"KubernetesWorker"}) {
				t.Errorf("after %s, node describe shows roles %q, want KubernetesWorker", r.cmdline, roles)
			}
			workers := nodeTable(t, ctx, op, "--filter", "has(node.roles.kubernetes_worker)")
			wantNodes(t, "node list of KubernetesWorkers", workers, id)

			r = op.succeed(t, ctx, "node", "remove", "role", "kw", id)
			if roles := list(describe(t, ctx, op, id)["Roles"], ", "); len(roles) != 0 {
				t.Errorf("after %s, node describe shows roles %q, want none", r.cmdline, roles)
			}

			op.fail(t, ctx,
				[]string{`unknown role "Gardener"`, "ConsensusMember (cm)", "KubernetesController (kc)", "KubernetesWorker (kw)"},
				"node", "add", "role", "Gardener", id)
		}},
		{"Labels", func(t *testing.T) {
			id := ids[1]
			nodeNumber := launch.NodeNumberLabel + "=1"
			r := op.succeed(t, ctx, "node", "label", id, "foo=bar")
			if labels := list(strings.TrimSuffix(r.stdout, "\n"), "\n"); !slices.Contains(labels, "foo=bar") || !slices.Contains(labels, nodeNumber) {
				t.Errorf("%s prints labels %q, want foo=bar and %s among them", r.cmdline, labels, nodeNumber)
			}
			if labels := list(describe(t, ctx, op, id)["Labels"], ", "); !slices.Contains(labels, "foo=bar") {
				t.Errorf("after %s, node describe shows labels %q, want foo=bar among them", r.cmdline, labels)
			}
			labelled := nodeTable(t, ctx, op, "--filter", `node.labels.pairs.exists(p, p.key == "foo" && p.value == "bar")`)
			wantNodes(t, "node list of nodes labelled foo=bar", labelled, id)

			op.fail(t, ctx, []string{`label value "bar baz"`}, "node", "label", id, "foo=bar baz")

			r = op.succeed(t, ctx, "node", "label", id, "-foo")
			if labels := list(strings.TrimSuffix(r.stdout, "\n"), "\n"); !slices.Equal(labels, []string{nodeNumber}) {
				t.Errorf("%s prints labels %q, want only %s", r.cmdline, labels, nodeNumber)
			}
			if labels := list(describe(t, ctx, op, id)["Labels"], ", "); !slices.Equal(labels, []string{nodeNumber}) {
				t.Errorf("after %s, node describe shows labels %q, want only %s", r.cmdline, labels, nodeNumber)
			}
		}},
		{"Configure", func(t *testing.T) {
			const field = "kubernetes.node_labels_to_synchronize"
			r := op.succeed(t, ctx, "cluster", "configure", "get")
			config := map[string]string{}
			for _, l := range strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n") {
				k, v, ok := strings.Cut(l, ": ")
				if !ok {
					t.Fatalf("%s prints %q, not a field: value line:\n%s", r.cmdline, l, r.stdout)
				}
				config[k] = v
			}
			want := map[string]string{
				"cluster_domain":          launch.DefaultClusterDomain,
				"tpm_mode":                launch.DefaultTPMMode,
				"storage_security_policy": launch.DefaultStorageSecurity,
			}
			for k, v := range want {
				if config[k] != v {
					t.Errorf("%s shows %s %q, want %q, as the cluster was launched", r.cmdline, k, config[k], v)
				}
			}
			if _, ok := config[field]; !ok {
				t.Fatalf("%s does not show %s:\n%s", r.cmdline, field, r.stdout)
			}
			before := list(strings.TrimSuffix(op.succeed(t, ctx, "cluster", "configure", "get", field).stdout, "\n"), "\n")

			values := []string{`^foo$`, `bar`}
			r = op.succeed(t, ctx, append([]string{"cluster", "configure", "set", field}, values...)...)
			wantContains(t, r.cmdline+"'s messages", r.stderr, "Changed "+field+".")
			if got := list(strings.TrimSuffix(r.stdout, "\n"), "\n"); !slices.Equal(got, values) {
				t.Errorf("%s prints %q as the new value, want %q", r.cmdline, got, values)
			}
			r = op.succeed(t, ctx, "cluster", "configure", "get", field, "--format", "json")
			var got map[string][]string
			if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
				t.Fatalf("%s: %v:\n%s", r.cmdline, err, r.stdout)
			}
			if len(got) != 1 || !slices.Equal(got[field], values) {
				t.Errorf("%s shows %v, want %s: %q", r.cmdline, got, field, values)
			}

			op.fail(t, ctx, []string{"tpm_mode is fixed at bootstrap"}, "cluster", "configure", "set", "tpm_mode", "disabled")
			op.fail(t, ctx, []string{`unknown configuration field "nonsense"`, field}, "cluster", "configure", "get", "nonsense")
			op.fail(t, ctx, []string{`invalid regular expression "("`}, "cluster", "configure", "set", field, "(")

			op.succeed(t, ctx, append([]string{"cluster", "configure", "set", field}, before...)...)
			after := list(strings.TrimSuffix(op.succeed(t, ctx, "cluster", "configure", "get", field).stdout, "\n"), "\n")
			if !slices.Equal(after, before) {
				t.Errorf("after restoring %s to %q, it is %q", field, before, after)
			}
		}},
		{"CertExport", func(t *testing.T) {
			dir := t.TempDir()
			r := op.in(dir).succeed(t, ctx, "cert", "export")
			certPath, keyPath := filepath.Join(dir, core.ExportedCertificateFile), filepath.Join(dir, core.ExportedKeyFile)
			// The files are named as the operator would: relative to where
			// metroctl ran.
			wantContains(t, r.cmdline+"'s messages", r.stderr, core.ExportedCertificateFile, core.ExportedKeyFile)

			cert, err := x509.ParseCertificate(readPEM(t, certPath, "CERTIFICATE"))
			if err != nil {
				t.Fatalf("%s: %v", certPath, err)
			}
			if !cert.Equal(c.Owner.Leaf) {
				t.Errorf("%s is not the owner certificate", certPath)
			}
			if _, err := identity.VerifyUserInCluster(cert, c.CA); err != nil {
				t.Errorf("%s is no user certificate of the cluster: %v", certPath, err)
			}
			key, err := x509.ParsePKCS8PrivateKey(readPEM(t, keyPath, "PRIVATE KEY"))
			if err != nil {
				t.Fatalf("%s: %v", keyPath, err)
			}
			if priv, ok := key.(ed25519.PrivateKey); !ok || !priv.Public().(ed25519.PublicKey).Equal(cert.PublicKey) {
				t.Errorf("%s holds a %T that is not the key of %s", keyPath, key, certPath)
			}
			certPEM, _ := os.ReadFile(certPath)
			keyPEM, _ := os.ReadFile(keyPath)
			if _, err := tls.X509KeyPair(certPEM, keyPEM); err != nil {
				t.Errorf("the exported files are no TLS key pair: %v", err)
			}
			if fi, err := os.Stat(keyPath); err != nil {
				t.Error(err)
			} else if fi.Mode().Perm() != 0o600 {
				t.Errorf("%s has mode %v, want 0600: it holds the owner's private key", keyPath, fi.Mode().Perm())
			}

			op.in(dir).fail(t, ctx, []string{core.ExportedCertificateFile + " already exists"}, "cert", "export")
		}},
		{"Completion", func(t *testing.T) {
			r := op.succeed(t, ctx, "completion", "bash")
			wantContains(t, r.cmdline, r.stdout, "__start_metroctl", "complete ")
			check := exec.CommandContext(ctx, "bash", "-n")
			check.Stdin = strings.NewReader(r.stdout)
			if out, err := check.CombinedOutput(); err != nil {
				t.Errorf("the bash completion script is not valid bash: %v\n%s", err, out)
			}
			// The script completes by asking metroctl itself, with the words
			// typed so far.
			r = (&operator{metroctl: c.Metroctl}).succeed(t, ctx, "__complete", "node", "")
			var subcommands []string
			for _, l := range strings.Split(r.stdout, "\n") {
				name, _, _ := strings.Cut(l, "\t")
				subcommands = append(subcommands, name)
			}
			for _, want := range []string{"list", "describe", "logs", "label", "add", "remove"} {
				if !slices.Contains(subcommands, want) {
					t.Errorf("completing 'metroctl node ' offers %q, not %q", subcommands, want)
				}
			}
		}},
	}
	for _, s := range steps {
		if !t.Run(s.name, s.run) {
			return
		}
	}
}
