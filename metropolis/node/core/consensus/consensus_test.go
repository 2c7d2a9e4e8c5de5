package consensus

import (
	"context"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strings"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"

	"metropolis.dev/osbase/pki"
)

func TestBootstrap(t *testing.T) {
	t.Parallel()
	const host = "127.0.0.10"
	n := newTestNode(t, host, freePort(t, host))
	st := n.start(t, nil).running(t)
	ctx := testContext(t)

	members := waitMembers(t, st, Member{NodeID: n.config.NodeID})
	if want := []string{fmt.Sprintf("https://%s:%d", host, n.config.Port)}; !slices.Equal(members[0].PeerURLs, want) {
		t.Errorf("peer URLs are %v, want %v", members[0].PeerURLs, want)
	}
	for _, l := range st.etcd.Clients {
		if network := l.Addr().Network(); network != "unix" {
			t.Errorf("etcd serves clients on %s %s, want only its unix socket", network, l.Addr())
		}
	}

	// The peer credentials on disk are for the node's key and address,
	// issued by the CA in etcd.
	f := n.config.files()
	ca, cert := readCertificate(t, f.caCert), readCertificate(t, f.peerCert)
	if !ca.Equal(st.ca) {
		t.Error("CA certificate on disk is not the one in etcd")
	}
	if err := cert.CheckSignatureFrom(ca); err != nil {
		t.Errorf("peer certificate is not issued by the CA: %v", err)
	}
	if pub, ok := cert.PublicKey.(ed25519.PublicKey); !ok || !pub.Equal(n.pub) {
		t.Error("peer certificate is not for the node's key")
	}
	if cert.Subject.CommonName != n.config.NodeID || len(cert.IPAddresses) != 1 || !cert.IPAddresses[0].Equal(net.ParseIP(host)) {
		t.Errorf("peer certificate is for %q at %v, want %q at %s", cert.Subject.CommonName, cert.IPAddresses, n.config.NodeID, host)
	}
	if _, err := os.Stat(f.crl); err != nil {
		t.Errorf("no CRL on disk: %v", err)
	}

	// AddNode says what is wrong with its arguments.
	for _, c := range []struct {
		nodeID, host string
		pub          ed25519.PublicKey
		want         string
	}{
		{"", host, n.pub, "node ID is empty"},
		{"metropolis-x", "node.example", n.pub, `peer host "node.example" of metropolis-x is not an IP address`},
		{"metropolis-x", "127.0.0.99", n.pub[:16], "public key of metropolis-x has 16 bytes"},
		{n.config.NodeID, "127.0.0.99", n.pub, "already a consensus member"},
	} {
		if _, err := st.AddNode(ctx, c.nodeID, c.pub, c.host); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("AddNode(%q, %q): got %v, want an error containing %q", c.nodeID, c.host, err, c.want)
		}
	}
	if err := st.RemoveNode(ctx, "metropolis-nobody"); !errors.Is(err, ErrNotMember) {
		t.Errorf("RemoveNode of a stranger: got %v, want ErrNotMember", err)
	}

	// The curator's client works, and elections work on it.
	curator := st.CuratorClient()
	if _, err := curator.Put(ctx, "greeting", "hello"); err != nil {
		t.Fatalf("Put: %v", err)
	}
	if got := get(ctx, t, curator, "greeting"); got != "hello" {
		t.Errorf("curator reads %q, want %q", got, "hello")
	}
	session, err := concurrency.NewSession(curator, concurrency.WithTTL(10))
	if err != nil {
		t.Fatalf("NewSession: %v", err)
	}
	defer session.Close()
	election := concurrency.NewElection(session, "/leader")
	if err := election.Campaign(ctx, n.config.NodeID); err != nil {
		t.Fatalf("Campaign: %v", err)
	}
	leader, err := election.Leader(ctx)
	if err != nil || string(leader.Kvs[0].Value) != n.config.NodeID {
		t.Errorf("election leader is %v (%v), want %s", leader, err, n.config.NodeID)
	}
	res, err := st.cl.Get(ctx, curatorPrefix+"/leader", clientv3.WithPrefix())
	if err != nil || len(res.Kvs) != 1 {
		t.Errorf("want the election's key below the curator's prefix, got %v (%v)", res, err)
	}
}

func TestNamespaces(t *testing.T) {
	t.Parallel()
	const host = "127.0.0.11"
	n := newTestNode(t, host, freePort(t, host))
	st := n.start(t, nil).running(t)
	ctx := testContext(t)

	curator, kubernetes := st.CuratorClient(), st.KubernetesClient()
	if _, err := curator.Put(ctx, "key", "curator"); err != nil {
		t.Fatal(err)
	}
	if _, err := kubernetes.Put(ctx, "key", "kubernetes"); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name   string
		client *clientv3.Client
		key    string
		want   string
	}{
		{"curator", curator, "key", "curator"},
		{"kubernetes", kubernetes, "key", "kubernetes"},
		{"whole key space", st.cl, curatorPrefix + "key", "curator"},
		{"whole key space", st.cl, kubernetesPrefix + "key", "kubernetes"},
	} {
		if got := get(ctx, t, c.client, c.key); got != c.want {
			t.Errorf("%s reads %q at %q, want %q", c.name, got, c.key, c.want)
		}
	}
	// Neither sees anything of the other or of the consensus service.
	for name, cl := range map[string]*clientv3.Client{"curator": curator, "kubernetes": kubernetes} {
		res, err := cl.Get(ctx, "", clientv3.WithFromKey())
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Kvs) != 1 {
			t.Errorf("%s sees %d keys, want only its own", name, len(res.Kvs))
		}
	}
}

func TestRestartFromDisk(t *testing.T) {
	t.Parallel()
	const host = "127.0.0.12"
	n := newTestNode(t, host, freePort(t, host))
	m := n.start(t, nil)
	st := m.running(t)
	ctx := testContext(t)
	if _, err := st.CuratorClient().Put(ctx, "kept", "yes"); err != nil {
		t.Fatal(err)
	}
	memberID := st.etcd.Server.ID()
	m.stop()
	m.stopped(t)

	// Settings for joining are ignored by a member that has data, even
	// without peers to join through, as the role of the member that
	// bootstrapped the cluster has none.
	bogus := &JoinCluster{
		CACertificate:   st.ca,
		NodeCertificate: st.ca,
		InitialCRL:      []byte("not a CRL"),
	}
	st = n.start(t, bogus).running(t)
	if got := get(ctx, t, st.CuratorClient(), "kept"); got != "yes" {
		t.Errorf("after restart, curator reads %q, want %q", got, "yes")
	}
	if id := st.etcd.Server.ID(); id != memberID {
		t.Errorf("after restart, member ID is %s, want %s", id, memberID)
	}
	waitMembers(t, st, Member{NodeID: n.config.NodeID})
}

func TestRestartWhenEtcdDies(t *testing.T) {
	t.Parallel()
	const host = "127.0.0.13"
	n := newTestNode(t, host, freePort(t, host))
	m := n.start(t, nil)
	st := m.running(t)
	ctx := testContext(t)
	if _, err := st.CuratorClient().Put(ctx, "kept", "yes"); err != nil {
		t.Fatal(err)
	}

	died := m.expectLog(t, "etcd stopped unexpectedly")
	st.etcd.Server.HardStop()
	died()
	restarted := m.running(t)
	if restarted == st {
		t.Fatal("status did not change")
	}
	if got := get(ctx, t, restarted.CuratorClient(), "kept"); got != "yes" {
		t.Errorf("after restart, curator reads %q, want %q", got, "yes")
	}
}

// TestCluster grows a cluster to three members and shrinks it again. Its
// steps build on each other.
func TestCluster(t *testing.T) {
	t.Parallel()
	hosts := []string{"127.0.0.20", "127.0.0.21", "127.0.0.22", "127.0.0.23"}
	port := freePort(t, hosts...)
	a, b, c, d := newTestNode(t, hosts[0], port), newTestNode(t, hosts[1], port), newTestNode(t, hosts[2], port), newTestNode(t, hosts[3], port)
	full := func(n *testNode) Member { return Member{NodeID: n.config.NodeID} }

	mA := a.start(t, nil)
	stA := mA.running(t)
	var mB, mC *testMember
	var joinC, joinD *JoinCluster

	// Members outlive the steps that start them.
	top := t
	steps := []struct {
		name string
		run  func(t *testing.T, ctx context.Context)
	}{
		{"join a learner and promote it", func(t *testing.T, ctx context.Context) {
			joinB, err := stA.AddNode(ctx, b.config.NodeID, b.pub, hosts[1])
			if err != nil {
				t.Fatalf("AddNode: %v", err)
			}
			members := waitMembers(t, stA, full(a), Member{NodeID: b.config.NodeID, Learner: true})
			checkJoinCluster(t, joinB, b, stA.ca, members)
			mB = b.start(top, joinB)
			mB.running(t)
			waitMembers(t, stA, full(a), full(b))
		}},
		{"join a third member", func(t *testing.T, ctx context.Context) {
			// etcd refuses to add members until all voting members have
			// been connected for a few seconds.
			eventually(t, "adding the third member", func(ctx context.Context) error {
				var err error
				joinC, err = stA.AddNode(ctx, c.config.NodeID, c.pub, hosts[2])
				if err != nil && !errors.Is(err, ErrQuorumAtRisk) {
					t.Fatalf("AddNode: %v", err)
				}
				return err
			})
			members := waitMembers(t, stA, full(a), full(b), Member{NodeID: c.config.NodeID, Learner: true})
			checkJoinCluster(t, joinC, c, stA.ca, members)
			mC = c.start(top, joinC)
			stC := mC.running(t)
			waitMembers(t, stA, full(a), full(b), full(c))

			if _, err := stA.CuratorClient().Put(ctx, "replicated", "yes"); err != nil {
				t.Fatal(err)
			}
			if got := get(ctx, t, stC.CuratorClient(), "replicated"); got != "yes" {
				t.Errorf("third member reads %q, want %q", got, "yes")
			}
		}},
		{"adding a member again", func(t *testing.T, ctx context.Context) {
			again, err := stA.AddNode(ctx, c.config.NodeID, c.pub, hosts[2])
			if err != nil {
				t.Fatalf("AddNode with the same address: %v", err)
			}
			if !again.NodeCertificate.Equal(joinC.NodeCertificate) {
				t.Error("AddNode with the same address issued another certificate")
			}
			if _, err := stA.AddNode(ctx, c.config.NodeID, c.pub, hosts[3]); !errors.Is(err, ErrAlreadyMember) {
				t.Errorf("AddNode with another address: got %v, want ErrAlreadyMember", err)
			}
		}},
		{"removal that would lose quorum is refused", func(t *testing.T, ctx context.Context) {
			// Once the first member has noticed that the third is gone,
			// removing the second would leave one of two members running.
			noticed := mA.expectLog(t, "peer became inactive", memberIDOf(t, stA, hosts[2]))
			mC.stop()
			mC.stopped(t)
			noticed()
			if err := stA.RemoveNode(ctx, b.config.NodeID); !errors.Is(err, ErrQuorumAtRisk) {
				t.Fatalf("RemoveNode: got %v, want ErrQuorumAtRisk", err)
			}
			waitMembers(t, stA, full(a), full(b), full(c))
		}},
		{"remove a stopped member", func(t *testing.T, ctx context.Context) {
			if err := stA.RemoveNode(ctx, c.config.NodeID); err != nil {
				t.Fatalf("RemoveNode: %v", err)
			}
			waitMembers(t, stA, full(a), full(b))
			crl, err := stA.pki.ca.CRL(ctx, stA.cl)
			if err != nil {
				t.Fatal(err)
			}
			if !pki.IsRevoked(crl, joinC.NodeCertificate) {
				t.Error("peer certificate of the removed member is not revoked")
			}
			if err := stA.RemoveNode(ctx, c.config.NodeID); !errors.Is(err, ErrNotMember) {
				t.Errorf("removing it again: got %v, want ErrNotMember", err)
			}
		}},
		{"revoked peers are rejected", func(t *testing.T, ctx context.Context) {
			var err error
			if joinD, err = stA.AddNode(ctx, d.config.NodeID, d.pub, hosts[3]); err != nil {
				t.Fatalf("AddNode: %v", err)
			}
			// Any member accepts the new member's certificate, which lets
			// it join...
			for _, h := range hosts[:2] {
				if err := peerRequest(ctx, peerURL(h, port), joinD.CACertificate, joinD.NodeCertificate, d.config.NodePrivateKey); err != nil {
					t.Fatalf("peer request to %s before revocation: %v", h, err)
				}
			}
			if err := stA.RemoveNode(ctx, d.config.NodeID); err != nil {
				t.Fatalf("RemoveNode of the learner: %v", err)
			}
			// ...but not once it is revoked.
			for _, h := range hosts[:2] {
				eventually(t, "waiting for the revoked peer to be rejected", func(ctx context.Context) error {
					if err := peerRequest(ctx, peerURL(h, port), joinD.CACertificate, joinD.NodeCertificate, d.config.NodePrivateKey); err == nil {
						return fmt.Errorf("%s accepts the revoked certificate", h)
					}
					return nil
				})
			}
			if crl := readCRL(t, b.config.files().crl); !pki.IsRevoked(crl, joinD.NodeCertificate) {
				t.Error("CRL on the disk of the second member does not list the revoked certificate")
			}
		}},
		{"remove a running member", func(t *testing.T, ctx context.Context) {
			removed := mB.expectLog(t, "this member was removed from the cluster")
			eventually(t, "removing the second member", func(ctx context.Context) error {
				err := stA.RemoveNode(ctx, b.config.NodeID)
				if err != nil && !errors.Is(err, ErrQuorumAtRisk) {
					t.Fatalf("RemoveNode: %v", err)
				}
				return err
			})
			waitMembers(t, stA, full(a))
			removed()
			mB.stop()
			if _, err := stA.CuratorClient().Put(ctx, "alone", "yes"); err != nil {
				t.Errorf("the remaining member does not work: %v", err)
			}
		}},
		{"the last voting member cannot be removed", func(t *testing.T, ctx context.Context) {
			if err := stA.RemoveNode(ctx, a.config.NodeID); !errors.Is(err, ErrQuorumAtRisk) {
				t.Errorf("RemoveNode: got %v, want ErrQuorumAtRisk", err)
			}
		}},
	}
	for _, s := range steps {
		if !t.Run(s.name, func(t *testing.T) { s.run(t, testContext(t)) }) {
			return
		}
	}
}

func get(ctx context.Context, t *testing.T, cl *clientv3.Client, key string) string {
	t.Helper()
	res, err := cl.Get(ctx, key)
	if err != nil {
		t.Fatalf("Get %q: %v", key, err)
	}
	if len(res.Kvs) == 0 {
		return ""
	}
	return string(res.Kvs[0].Value)
}

func peerURL(host string, port int) string {
	return fmt.Sprintf("https://%s:%d", host, port)
}

// checkJoinCluster checks what AddNode returned for n.
func checkJoinCluster(t *testing.T, j *JoinCluster, n *testNode, ca *x509.Certificate, members []Member) {
	t.Helper()
	if !j.CACertificate.Equal(ca) {
		t.Error("JoinCluster has another CA")
	}
	if pub, ok := j.NodeCertificate.PublicKey.(ed25519.PublicKey); !ok || !pub.Equal(n.pub) {
		t.Error("JoinCluster's certificate is not for the node's key")
	}
	var want []ExistingNode
	for _, m := range members {
		if m.NodeID != n.config.NodeID {
			want = append(want, ExistingNode{Name: m.NodeID, URL: m.PeerURLs[0]})
		}
	}
	if !slices.Equal(j.ExistingNodes, want) {
		t.Errorf("JoinCluster lists %v, want %v", j.ExistingNodes, want)
	}
}

// memberIDOf returns the etcd member ID of the member at host.
func memberIDOf(t *testing.T, st *Status, host string) string {
	t.Helper()
	for _, m := range st.etcd.Server.Cluster().Members() {
		if slices.Contains(m.PeerURLs, fmt.Sprintf("https://%s:%d", host, st.port)) {
			return m.ID.String()
		}
	}
	t.Fatalf("no member at %s", host)
	return ""
}

func readCertificate(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	cert, err := x509.ParseCertificate(readPEM(t, path, pemCertificate))
	if err != nil {
		t.Fatalf("parsing %s: %v", path, err)
	}
	return cert
}

func readCRL(t *testing.T, path string) *x509.RevocationList {
	t.Helper()
	crl, err := x509.ParseRevocationList(readPEM(t, path, pemCRL))
	if err != nil {
		t.Fatalf("parsing %s: %v", path, err)
	}
	return crl
}

func readPEM(t *testing.T, path, typ string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != typ {
		t.Fatalf("%s holds no PEM block of type %s", path, typ)
	}
	return block.Bytes
}

func TestConfigValidation(t *testing.T) {
	valid := newTestNode(t, "127.0.0.1", 0).config
	for _, c := range []struct {
		name   string
		change func(*Config)
		want   string
	}{
		{"node ID missing", func(c *Config) { c.NodeID = "" }, "node ID is empty"},
		{"node ID with slash", func(c *Config) { c.NodeID = "a/b" }, `contains '/'`},
		{"short key", func(c *Config) { c.NodePrivateKey = c.NodePrivateKey[:32] }, "NodePrivateKey has 32 bytes"},
		{"no data directory", func(c *Config) { c.DataDir = "" }, "DataDir is empty"},
		{"no ephemeral directory", func(c *Config) { c.EphemeralDir = "" }, "EphemeralDir is empty"},
		{"host name", func(c *Config) { c.ListenHost = "localhost" }, `ListenHost "localhost" is not an IP address`},
		{"port", func(c *Config) { c.Port = 70000 }, "peer port 70000 is out of range"},
		{"incomplete JoinCluster", func(c *Config) { c.JoinCluster = &JoinCluster{} }, "JoinCluster has no CACertificate"},
	} {
		t.Run(c.name, func(t *testing.T) {
			config := valid
			c.change(&config)
			err := config.validate()
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("got %v, want an error containing %q", err, c.want)
			}
		})
	}
	if err := valid.validate(); err != nil {
		t.Errorf("valid configuration: %v", err)
	}
}
