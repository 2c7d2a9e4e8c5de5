package consensus

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"metropolis.dev/osbase/event"
	"metropolis.dev/osbase/logtree"
	"metropolis.dev/osbase/supervisor"
)

// testTimeout bounds every wait of the tests. It is generous because the
// tests run on small, busy machines.
const testTimeout = 60 * time.Second

func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// testNode is a node's identity and its member's configuration.
type testNode struct {
	config Config
	pub    ed25519.PublicKey
}

func newTestNode(t *testing.T, host string, port int) *testNode {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return &testNode{
		config: Config{
			NodeID:         "metropolis-" + hex.EncodeToString(pub[:16]),
			NodePrivateKey: priv,
			DataDir:        t.TempDir(),
			EphemeralDir:   t.TempDir(),
			ListenHost:     host,
			Port:           port,
		},
		pub: pub,
	}
}

// testMember is a Service running in its own supervision tree.
type testMember struct {
	svc  *Service
	stop context.CancelFunc
	logs *logtree.LogTree
}

// start runs a member of n, with join as its JoinCluster.
func (n *testNode) start(t *testing.T, join *JoinCluster) *testMember {
	t.Helper()
	config := n.config
	config.JoinCluster = join
	m := &testMember{svc: New(config)}
	m.stop, m.logs = supervisor.TestHarness(t, m.svc.Run, supervisor.WithBackoff(100*time.Millisecond, time.Second))
	return m
}

// running waits until the member runs and returns its Status.
func (m *testMember) running(t *testing.T) *Status {
	t.Helper()
	return m.waitStatus(t, FilterRunning)
}

// stopped waits until the member has stopped.
func (m *testMember) stopped(t *testing.T) {
	t.Helper()
	m.waitStatus(t, event.Filter(func(s *Status) bool { return !s.Running() }))
}

func (m *testMember) waitStatus(t *testing.T, filter event.GetOption[*Status]) *Status {
	t.Helper()
	w := m.svc.Value().Watch()
	defer w.Close()
	st, err := w.Get(testContext(t), filter)
	if err != nil {
		t.Fatalf("waiting for the member's status: %v", err)
	}
	return st
}

// expectLog starts following the member's log and returns a function that
// waits until the member has logged an entry containing all of parts. Only
// entries logged after expectLog returned count, so that the entry is known
// to be about what the test does next.
func (m *testMember) expectLog(t *testing.T, parts ...string) (wait func()) {
	t.Helper()
	r, err := m.logs.Read("", logtree.WithChildren(), logtree.WithStream())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	return func() {
		t.Helper()
		defer r.Close()
		ctx := testContext(t)
		for {
			select {
			case e := <-r.Stream:
				text := e.String()
				if !slices.ContainsFunc(parts, func(p string) bool { return !strings.Contains(text, p) }) {
					return
				}
			case <-ctx.Done():
				t.Fatalf("no log entry containing %q", parts)
			}
		}
	}
}

// eventually calls f until it returns nil, failing the test with its last
// error once testTimeout has passed.
func eventually(t *testing.T, what string, f func(ctx context.Context) error) {
	t.Helper()
	ctx := testContext(t)
	for {
		err := f(ctx)
		if err == nil {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s: %v", what, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// freePort returns a TCP port that was free a moment ago on all of hosts.
// etcd needs its peer port before it starts, so it cannot be told to pick
// one.
func freePort(t *testing.T, hosts ...string) int {
	t.Helper()
	for range 20 {
		l, err := net.Listen("tcp", net.JoinHostPort(hosts[0], "0"))
		if err != nil {
			t.Fatalf("finding a free port: %v", err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		listeners := []net.Listener{l}
		for _, h := range hosts[1:] {
			if l, err := net.Listen("tcp", net.JoinHostPort(h, fmt.Sprint(port))); err == nil {
				listeners = append(listeners, l)
			}
		}
		for _, l := range listeners {
			l.Close()
		}
		if len(listeners) == len(hosts) {
			return port
		}
	}
	t.Fatalf("found no port free on all of %v", hosts)
	return 0
}

// waitMembers waits until the cluster's members are exactly want, compared
// by node ID and learner state.
func waitMembers(t *testing.T, st *Status, want ...Member) []Member {
	t.Helper()
	slices.SortFunc(want, func(a, b Member) int { return strings.Compare(a.NodeID, b.NodeID) })
	var got []Member
	eventually(t, "waiting for members", func(ctx context.Context) error {
		var err error
		if got, err = st.Members(ctx); err != nil {
			return err
		}
		if !slices.EqualFunc(got, want, func(a, b Member) bool { return a.NodeID == b.NodeID && a.Learner == b.Learner }) {
			return fmt.Errorf("members are %+v, want %+v", got, want)
		}
		return nil
	})
	return got
}

// peerRequest asks the member at peerURL for the cluster's members, over a
// peer connection authenticated with the given credentials, which is what
// a joining member does first.
func peerRequest(ctx context.Context, peerURL string, ca, cert *x509.Certificate, key ed25519.PrivateKey) error {
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	transport := &http.Transport{
		TLSClientConfig: &tls.Config{
			Certificates: []tls.Certificate{{Certificate: [][]byte{cert.Raw}, PrivateKey: key}},
			RootCAs:      roots,
		},
		DisableKeepAlives: true,
	}
	defer transport.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, peerURL+"/members", nil)
	if err != nil {
		return err
	}
	res, err := (&http.Client{Transport: transport}).Do(req)
	if err != nil {
		return err
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return errors.New(res.Status)
	}
	return nil
}
