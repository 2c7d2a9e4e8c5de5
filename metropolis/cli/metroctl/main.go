// metroctl is the operator's command-line tool for Metropolis clusters: it
// takes ownership of a new cluster, lists, approves and configures nodes,
// reads their logs, inspects and measures their network mesh, restarts them,
// and writes the parameters new nodes boot with.
//
// Every command is a thin layer over the cluster's gRPC API; what other
// tools may reuse (credentials, trust on first use, dialing, output) lives in
// metroctl/core. Commands are grouped by file: cluster, node, node
// management, network mesh, approval, certificates and node parameters.
// Data a command produces (tables, JSON, values) goes to standard output or
// the --output file; progress and confirmations go to standard error, so
// that scripts can consume the data alone.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"metropolis.dev/metropolis/cli/metroctl/core"
	"metropolis.dev/metropolis/node/core/rpc"
	apb "metropolis.dev/metropolis/proto/api"
)

// env is what a metroctl invocation runs with: its standard streams, its
// working directory and the global flags.
type env struct {
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	// interactive says whether the operator can be asked questions on
	// stdin.
	interactive bool
	// workDir is the directory files are exported into.
	workDir string

	endpoints       []string
	proxy           string
	configDir       string
	filter          string
	output          string
	format          string
	acceptCA        string
	trustOnFirstUse bool
	verbose         bool
	connectTimeout  time.Duration
}

// Output formats.
const (
	formatText = "text"
	formatJSON = "json"
)

func newRootCommand(e *env) *cobra.Command {
	root := &cobra.Command{
		Use:   "metroctl",
		Short: "Manage a Metropolis cluster",
		Long: `metroctl manages a Metropolis cluster through its API.

A configuration directory (--config) holds the owner's private key, the owner
certificate the cluster issued for it, and the CA of the cluster it trusts.
The first command that talks to a cluster fetches that CA and asks whether to
trust it (trust on first use); every later connection is verified against it.

Commands that talk to the cluster need the address of at least one node that
runs the control plane (--endpoints). They then follow the curator leader
wherever it runs.`,
		Example: `  # Create an owner key and the parameters of a new cluster's first node:
  metroctl cluster init-owner
  metroctl node params --bootstrap --cluster cluster.internal -o params.pb

  # Once it runs, take ownership and look at the cluster:
  metroctl --endpoints 10.1.0.2 cluster takeownership
  metroctl --endpoints 10.1.0.2 node list`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			if e.format != formatText && e.format != formatJSON {
				return usageError{cmd, fmt.Errorf("unknown --format %q: want %s or %s", e.format, formatText, formatJSON)}
			}
			return nil
		},
	}
	root.SetIn(e.stdin)
	root.SetOut(e.stdout)
	root.SetErr(e.stderr)
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error { return usageError{cmd, err} })

	defaultConfig, err := core.DefaultConfigDir()
	if err != nil {
		defaultConfig = ""
	}
	flags := root.PersistentFlags()
	flags.StringSliceVar(&e.endpoints, "endpoints", nil, "nodes running the control plane, as host or host:port (repeatable or comma-separated)")
	flags.StringVar(&e.proxy, "proxy", "", "SOCKS5 proxy (host:port) to make all connections through")
	flags.StringVar(&e.configDir, "config", defaultConfig, "configuration directory with the owner key, owner certificate and trusted CA")
	flags.StringVar(&e.filter, "filter", "", "CEL expression selecting nodes to list, e.g. 'node.state == NODE_STATE_UP'")
	flags.StringVarP(&e.output, "output", "o", "", "write the command's output to this file instead of standard output")
	flags.StringVar(&e.format, "format", formatText, "output format: text (for people) or json (for scripts)")
	flags.StringVar(&e.acceptCA, "accept-ca", "", "trust the cluster CA with this SHA256 fingerprint without asking")
	flags.BoolVar(&e.trustOnFirstUse, "trust-on-first-use", false, "trust whatever CA the cluster presents the first time, without asking (only on networks you trust)")
	flags.BoolVarP(&e.verbose, "verbose", "v", false, "log how the curator leader is found")
	flags.DurationVar(&e.connectTimeout, "connect-timeout", core.DefaultConnectTimeout, "how long to wait for the cluster to become reachable")

	root.AddCommand(
		newClusterCommand(e),
		newNodeCommand(e),
		newApproveCommand(e),
		newCertCommand(e),
	)
	return root
}

// usageError is an error in how a command was called.
type usageError struct {
	cmd *cobra.Command
	err error
}

func (u usageError) Error() string { return u.err.Error() }
func (u usageError) Unwrap() error { return u.err }

// args returns a check that a command got between min and max arguments
// (max < 0: any number), described by what.
func args(minimum, maximum int, what string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) < minimum || (maximum >= 0 && len(args) > maximum) {
			return usageError{cmd, fmt.Errorf("%s takes %s, got %d argument(s)", cmd.CommandPath(), what, len(args))}
		}
		return nil
	}
}

// execute runs metroctl with args. Its error includes hints on what to do.
func execute(ctx context.Context, e *env, args []string) error {
	root := newRootCommand(e)
	root.SetArgs(args)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return nil
	}
	if h := e.hint(cmd, err); h != "" {
		return fmt.Errorf("%w\n%s", err, h)
	}
	return err
}

// hint says what to do about err, or nothing.
func (e *env) hint(cmd *cobra.Command, err error) string {
	cfg := e.config()
	var usage usageError
	var mismatch *core.CAMismatchError
	switch {
	case errors.As(err, &usage):
		return fmt.Sprintf("Run '%s --help' for usage.", usage.cmd.CommandPath())
	case errors.As(err, &mismatch):
		return fmt.Sprintf("The configuration in %s belongs to another cluster. If this cluster was bootstrapped anew, remove %s and %s and take ownership again; to manage several clusters, use a --config directory for each.", cfg.Dir, cfg.TrustedCAPath(), cfg.OwnerCertificatePath())
	case errors.Is(err, core.ErrCANotTrusted):
		return "Compare the CA fingerprint with the one a node of the cluster shows, then pass it with --accept-ca, or run the command in a terminal to be asked. On a network you trust, --trust-on-first-use accepts the CA without checking."
	case errors.Is(err, core.ErrUnreachable):
		return "Check that --endpoints names nodes running the control plane and that they are reachable (through --proxy if needed)."
	}
	if cmd != nil && strings.HasPrefix(err.Error(), "unknown command") {
		return fmt.Sprintf("Run '%s --help' for usage.", cmd.CommandPath())
	}
	return ""
}

func (e *env) config() core.Config {
	return core.Config{Dir: e.configDir}
}

// out returns where the command's output goes, and a function to call when
// it is written.
func (e *env) out() (io.Writer, func() error, error) {
	if e.output == "" {
		return e.stdout, func() error { return nil }, nil
	}
	f, err := os.OpenFile(e.output, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, nil, fmt.Errorf("opening output: %w", err)
	}
	return f, f.Close, nil
}

// writeOutput writes the output of a command with write.
func (e *env) writeOutput(write func(w io.Writer) error) error {
	w, done, err := e.out()
	if err != nil {
		return err
	}
	if err := write(w); err != nil {
		done()
		return fmt.Errorf("writing output: %w", err)
	}
	if err := done(); err != nil {
		return fmt.Errorf("writing output: %w", err)
	}
	return nil
}

func (e *env) json() bool { return e.format == formatJSON }

// statusf tells the operator what happened.
func (e *env) statusf(format string, args ...any) {
	fmt.Fprintf(e.stderr, format+"\n", args...)
}

// cluster returns how to reach the cluster, with extra endpoints besides
// those of --endpoints.
func (e *env) cluster(extraEndpoints ...string) (*core.Cluster, error) {
	endpoints := append(append([]string(nil), e.endpoints...), extraEndpoints...)
	if len(endpoints) == 0 {
		return nil, errors.New("no endpoints given: pass --endpoints with the address of a node running the control plane")
	}
	for _, ep := range endpoints {
		if _, err := core.ParseEndpoint(ep); err != nil {
			return nil, fmt.Errorf("--endpoints: %w", err)
		}
	}
	c := &core.Cluster{
		Endpoints:      endpoints,
		Proxy:          e.proxy,
		ConnectTimeout: e.connectTimeout,
		Progress:       e.stderr,
	}
	if e.verbose {
		c.Logger = slog.New(slog.NewTextHandler(e.stderr, nil))
	}
	return c, nil
}

// trustPolicy is how the flags and the terminal decide about a cluster CA
// seen for the first time.
func (e *env) trustPolicy() core.TrustPolicy {
	p := core.TrustPolicy{Fingerprint: e.acceptCA, AcceptAny: e.trustOnFirstUse}
	if e.interactive {
		p.Confirm = e.confirmCA
	}
	return p
}

func (e *env) confirmCA(ca *x509.Certificate, endpoint string) (bool, error) {
	fmt.Fprintf(e.stderr, "%s presents a cluster CA this configuration has not seen yet:\n", endpoint)
	fmt.Fprintf(e.stderr, "  Subject:     %s\n", ca.Subject)
	fmt.Fprintf(e.stderr, "  Fingerprint: %s\n", core.Fingerprint(ca))
	fmt.Fprintf(e.stderr, "Compare the fingerprint with the one a node of the cluster shows.\n")
	fmt.Fprintf(e.stderr, "Trust this CA for all further connections? Type 'yes' to trust it: ")
	answer, err := readLine(e.stdin)
	if err != nil {
		return false, err
	}
	return strings.TrimSpace(answer) == "yes", nil
}

// readLine reads up to the end of a line, byte by byte, so that nothing
// after it is consumed.
func readLine(r io.Reader) (string, error) {
	var line []byte
	b := make([]byte, 1)
	for {
		n, err := r.Read(b)
		if n == 1 {
			if b[0] == '\n' {
				return string(line), nil
			}
			line = append(line, b[0])
		}
		if err == io.EOF {
			return string(line), nil
		}
		if err != nil {
			return "", err
		}
	}
}

// session is the owner's authenticated access to the cluster.
type session struct {
	cluster *core.Cluster
	ca      *x509.Certificate
	owner   tls.Certificate
	conn    *core.LeaderConn
	mgmt    apb.ManagementClient
}

// connect connects to the cluster's curator leader as the owner.
func (e *env) connect(ctx context.Context) (*session, error) {
	cfg := e.config()
	owner, err := cfg.OwnerCertificate()
	if errors.Is(err, core.ErrNoOwnerKey) || errors.Is(err, core.ErrNoOwnerCertificate) {
		return nil, fmt.Errorf("take ownership first: metroctl --endpoints <node> cluster takeownership (%w)", err)
	}
	if err != nil {
		return nil, err
	}
	cl, err := e.cluster()
	if err != nil {
		return nil, err
	}
	ca, err := cl.TrustedCA(ctx, cfg, e.trustPolicy())
	if err != nil {
		return nil, err
	}
	conn, err := cl.DialLeader(rpc.NewAuthenticatedCredentials(owner, rpc.WantRemoteCluster(ca)), ca)
	if err != nil {
		return nil, err
	}
	return &session{cluster: cl, ca: ca, owner: owner, conn: conn, mgmt: apb.NewManagementClient(conn)}, nil
}

func (s *session) Close() {
	s.conn.Close()
}

// isTerminal says whether f is a terminal, and so whether somebody may be
// there to answer questions.
func isTerminal(f *os.File) bool {
	// Only a terminal has terminal attributes; /dev/null, a character
	// device too, as where scripts and cron take their input from, has
	// none.
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	e := &env{
		stdin:       os.Stdin,
		stdout:      os.Stdout,
		stderr:      os.Stderr,
		interactive: isTerminal(os.Stdin),
		workDir:     ".",
	}
	err := execute(ctx, e, os.Args[1:])
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "metroctl: %v\n", err)
		os.Exit(1)
	}
}
