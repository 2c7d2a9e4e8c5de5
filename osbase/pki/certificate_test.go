package pki

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"metropolis.dev/osbase/test/etcdtest"
)

func TestChainVerifies(t *testing.T) {
	ctx := testContext(t)
	kv := etcdtest.Start(t).Client
	ns := testNamespace()

	ca := testCA(ns, "ca")
	server := &Certificate{Namespace: ns, Issuer: ca, Name: "server",
		Template: Server([]string{"node.example"}, []net.IP{net.IPv4(127, 0, 0, 1)})}
	client := &Certificate{Namespace: ns, Issuer: ca, Name: "client", Template: Client("alice")}

	caCert := mustEnsure(ctx, t, kv, ca)
	serverCert := mustEnsure(ctx, t, kv, server)
	clientCert := mustEnsure(ctx, t, kv, client)

	if !caCert.IsCA || !caCert.BasicConstraintsValid {
		t.Errorf("CA: IsCA %v, BasicConstraintsValid %v, want both", caCert.IsCA, caCert.BasicConstraintsValid)
	}
	if want := x509.KeyUsageCertSign | x509.KeyUsageCRLSign; caCert.KeyUsage != want {
		t.Errorf("CA key usage %b, want %b", caCert.KeyUsage, want)
	}
	if clientCert.Subject.CommonName != "alice" {
		t.Errorf("client common name %q, want alice", clientCert.Subject.CommonName)
	}

	for _, c := range []*Certificate{ca, server, client} {
		cert := mustEnsure(ctx, t, kv, c)
		pub, ok := cert.PublicKey.(ed25519.PublicKey)
		if !ok {
			t.Fatalf("%s: public key is %T, want ed25519", c.Name, cert.PublicKey)
		}
		key, err := c.PrivateKey()
		if err != nil {
			t.Fatalf("%s: PrivateKey: %v", c.Name, err)
		}
		if !pub.Equal(key.Public()) {
			t.Errorf("%s: private key does not match certificate", c.Name)
		}
		if len(cert.SubjectKeyId) == 0 {
			t.Errorf("%s: no subject key ID", c.Name)
		}
		if cert.SerialNumber.Sign() <= 0 || cert.SerialNumber.BitLen() > 127 {
			t.Errorf("%s: serial %x is not a positive 127-bit number", c.Name, cert.SerialNumber)
		}
		if !cert.NotBefore.Equal(unlimitedNotBefore) || !cert.NotAfter.Equal(unlimitedNotAfter) {
			t.Errorf("%s: valid from %v to %v, want unlimited", c.Name, cert.NotBefore, cert.NotAfter)
		}
	}
	for _, leaf := range []*x509.Certificate{serverCert, clientCert} {
		if !bytes.Equal(leaf.AuthorityKeyId, caCert.SubjectKeyId) {
			t.Errorf("%v: authority key ID %x, want CA's %x", leaf.Subject, leaf.AuthorityKeyId, caCert.SubjectKeyId)
		}
	}

	roots := x509.NewCertPool()
	roots.AddCert(caCert)
	for _, tc := range []struct {
		name    string
		cert    *x509.Certificate
		dnsName string
		usage   x509.ExtKeyUsage
		wantOK  bool
	}{
		{"server as server", serverCert, "node.example", x509.ExtKeyUsageServerAuth, true},
		{"server for another name", serverCert, "other.example", x509.ExtKeyUsageServerAuth, false},
		{"server as client", serverCert, "", x509.ExtKeyUsageClientAuth, false},
		{"client as client", clientCert, "", x509.ExtKeyUsageClientAuth, true},
		{"client as server", clientCert, "", x509.ExtKeyUsageServerAuth, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.cert.Verify(x509.VerifyOptions{
				Roots:     roots,
				DNSName:   tc.dnsName,
				KeyUsages: []x509.ExtKeyUsage{tc.usage},
			})
			if (err == nil) != tc.wantOK {
				t.Errorf("Verify: %v, want success %v", err, tc.wantOK)
			}
		})
	}
}

func TestTemplateValidityIsKept(t *testing.T) {
	ctx := testContext(t)
	kv := etcdtest.Start(t).Client
	ns := testNamespace()

	notBefore := time.Date(2020, time.January, 1, 0, 0, 0, 0, time.UTC)
	notAfter := time.Date(2030, time.January, 1, 0, 0, 0, 0, time.UTC)
	template := Client("short-lived")
	template.NotBefore, template.NotAfter = notBefore, notAfter
	c := &Certificate{Namespace: ns, Issuer: testCA(ns, "ca"), Name: "short-lived", Template: template}

	cert := mustEnsure(ctx, t, kv, c)
	if !cert.NotBefore.Equal(notBefore) || !cert.NotAfter.Equal(notAfter) {
		t.Errorf("valid from %v to %v, want %v to %v", cert.NotBefore, cert.NotAfter, notBefore, notAfter)
	}
}

func TestEnsureIsIdempotent(t *testing.T) {
	ctx := testContext(t)
	s := etcdtest.Start(t)
	ns := testNamespace()
	newLeaf := func() *Certificate {
		return &Certificate{Namespace: ns, Issuer: testCA(ns, "ca"), Name: "leaf", Template: Client("leaf")}
	}

	leaf := newLeaf()
	first, err := leaf.Ensure(ctx, s.Client)
	if err != nil {
		t.Fatalf("first Ensure: %v", err)
	}
	second, err := leaf.Ensure(ctx, s.Client)
	if err != nil {
		t.Fatalf("second Ensure: %v", err)
	}
	if !bytes.Equal(first, second) {
		t.Errorf("second Ensure returned a different certificate")
	}
	key, err := leaf.PrivateKey()
	if err != nil {
		t.Fatalf("PrivateKey: %v", err)
	}

	// A restarted process only knows the description, and may use another
	// etcd client.
	restarted := newLeaf()
	third, err := restarted.Ensure(ctx, s.NewClient(t))
	if err != nil {
		t.Fatalf("Ensure after restart: %v", err)
	}
	if !bytes.Equal(first, third) {
		t.Errorf("Ensure after restart returned a different certificate")
	}
	restartedKey, err := restarted.PrivateKey()
	if err != nil {
		t.Fatalf("PrivateKey after restart: %v", err)
	}
	if !key.Equal(restartedKey) {
		t.Errorf("PrivateKey after restart returned a different key")
	}

	for k, v := range stored(ctx, t, s.Client, "/test-pki/") {
		if v.Version != 1 {
			t.Errorf("%s was written %d times, want once", k, v.Version)
		}
	}
}

func TestEnsureReturnsCopy(t *testing.T) {
	ctx := testContext(t)
	kv := etcdtest.Start(t).Client
	ns := testNamespace()
	ca := testCA(ns, "ca")

	der, err := ca.Ensure(ctx, kv)
	if err != nil {
		t.Fatalf("Ensure: %v", err)
	}
	want := bytes.Clone(der)
	clear(der)
	again, err := ca.Ensure(ctx, kv)
	if err != nil {
		t.Fatalf("second Ensure: %v", err)
	}
	if !bytes.Equal(again, want) {
		t.Errorf("modifying the result of Ensure changed the certificate")
	}
}

// TestConcurrentEnsure lets two etcd clients race to create the same CA and
// leaf certificate, round after round.
func TestConcurrentEnsure(t *testing.T) {
	const rounds = 30
	ctx := testContext(t)
	s := etcdtest.Start(t)
	kvs := []clientv3.KV{s.Client, s.NewClient(t)}
	ns := testNamespace()

	for round := range rounds {
		caName, leafName := fmt.Sprintf("ca-%d", round), fmt.Sprintf("leaf-%d", round)
		var (
			wg          sync.WaitGroup
			start       = make(chan struct{})
			cas, leaves [2][]byte
			keys        [2]ed25519.PrivateKey
			errs        [2]error
		)
		for i, kv := range kvs {
			wg.Go(func() {
				// Each participant has its own view of the PKI, as two
				// nodes would.
				ca := testCA(ns, caName)
				leaf := &Certificate{Namespace: ns, Issuer: ca, Name: leafName, Template: Client(leafName)}
				<-start
				if leaves[i], errs[i] = leaf.Ensure(ctx, kv); errs[i] != nil {
					return
				}
				if cas[i], errs[i] = ca.Ensure(ctx, kv); errs[i] != nil {
					return
				}
				keys[i], errs[i] = leaf.PrivateKey()
			})
		}
		close(start)
		wg.Wait()

		for i, err := range errs {
			if err != nil {
				t.Fatalf("round %d, client %d: %v", round, i, err)
			}
		}
		if !bytes.Equal(cas[0], cas[1]) {
			t.Errorf("round %d: clients ended up with different CAs", round)
		}
		if !bytes.Equal(leaves[0], leaves[1]) {
			t.Errorf("round %d: clients ended up with different leaf certificates", round)
		}
		if !keys[0].Equal(keys[1]) {
			t.Errorf("round %d: clients ended up with different leaf keys", round)
		}
		leaf, err := x509.ParseCertificate(leaves[0])
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		ca, err := x509.ParseCertificate(cas[0])
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		if err := leaf.CheckSignatureFrom(ca); err != nil {
			t.Errorf("round %d: leaf not signed by the CA both clients see: %v", round, err)
		}
	}

	certs := stored(ctx, t, s.Client, ns.certificateKey(""))
	if len(certs) != 2*rounds {
		t.Errorf("%d certificates stored, want %d", len(certs), 2*rounds)
	}
	for k, v := range stored(ctx, t, s.Client, "/test-pki/") {
		if v.Version != 1 {
			t.Errorf("%s was written %d times, want once", k, v.Version)
		}
	}
}

func TestExternal(t *testing.T) {
	ctx := testContext(t)
	kv := etcdtest.Start(t).Client
	ns := testNamespace()
	ca := testCA(ns, "ca")

	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	external := &Certificate{Namespace: ns, Issuer: ca, Name: "external", Template: Client("external"),
		Mode: CertificateExternal, PublicKey: pub}
	cert := mustEnsure(ctx, t, kv, external)

	if !pub.Equal(cert.PublicKey) {
		t.Errorf("certificate is for %x, want %x", cert.PublicKey, pub)
	}
	caCert := mustEnsure(ctx, t, kv, ca)
	if err := cert.CheckSignatureFrom(caCert); err != nil {
		t.Errorf("certificate not signed by CA: %v", err)
	}
	if _, err := external.PrivateKey(); err == nil {
		t.Errorf("PrivateKey of external certificate succeeded")
	}

	all := stored(ctx, t, kv, "")
	if _, ok := all[ns.privateKeyKey("external")]; ok {
		t.Errorf("a private key is stored for the external certificate")
	}
	if _, ok := all[ns.certificateKey("external")]; !ok {
		t.Errorf("external certificate is not stored at %s", ns.certificateKey("external"))
	}
	for k, v := range all {
		if bytes.Contains(v.Value, priv.Seed()) {
			t.Errorf("%s contains the external private key", k)
		}
	}
}

func TestNameConflicts(t *testing.T) {
	ctx := testContext(t)
	kv := etcdtest.Start(t).Client
	ns := testNamespace()
	ca := testCA(ns, "ca")
	external := func() *Certificate {
		pub, _, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return &Certificate{Namespace: ns, Issuer: ca, Name: "taken", Template: Client("taken"),
			Mode: CertificateExternal, PublicKey: pub}
	}
	mustEnsure(ctx, t, kv, external())

	for _, tc := range []struct {
		name    string
		c       *Certificate
		wantErr string
	}{
		{"external with another key", external(), "another public key"},
		{"managed", &Certificate{Namespace: ns, Issuer: ca, Name: "taken", Template: Client("taken")}, "no private key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.c.Ensure(ctx, kv)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("Ensure: %v, want error containing %q", err, tc.wantErr)
			}
		})
	}
}

func TestValidation(t *testing.T) {
	ctx := testContext(t)
	kv := etcdtest.Start(t).Client
	ns := testNamespace()
	ca := testCA(ns, "ca")
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	externalCA := &Certificate{Namespace: ns, Issuer: ca, Name: "external-ca", Template: CA("external"),
		Mode: CertificateExternal, PublicKey: pub}
	self := &Certificate{Namespace: ns, Name: "self", Template: CA("self")}
	self.Issuer = self
	loopA := &Certificate{Namespace: ns, Name: "loop-a", Template: CA("a")}
	loopB := &Certificate{Namespace: ns, Name: "loop-b", Template: CA("b"), Issuer: loopA}
	loopA.Issuer = loopB
	leafOfLoop := &Certificate{Namespace: ns, Name: "leaf", Template: Client("x"), Issuer: loopA}

	for _, tc := range []struct {
		name    string
		c       *Certificate
		wantErr string
	}{
		{"no namespace", &Certificate{Issuer: SelfSigned, Name: "a"}, "no namespace"},
		{"empty name", &Certificate{Namespace: ns, Issuer: SelfSigned}, "name is empty"},
		{"slash in name", &Certificate{Namespace: ns, Issuer: SelfSigned, Name: "a/b"}, `contains '/'`},
		{"space in name", &Certificate{Namespace: ns, Issuer: SelfSigned, Name: "a b"}, `contains ' '`},
		{"long name", &Certificate{Namespace: ns, Issuer: SelfSigned, Name: strings.Repeat("a", maxNameLength+1)}, "long"},
		{"no issuer", &Certificate{Namespace: ns, Name: "a"}, "no issuer"},
		{"own issuer", self, "own issuer"},
		{"issuer loop", loopA, `loops back to "loop-a"`},
		{"leaf below an issuer loop", leafOfLoop, "loops back"},
		{"external issuer", &Certificate{Namespace: ns, Issuer: externalCA, Name: "a"}, "cannot sign"},
		{"managed with public key", &Certificate{Namespace: ns, Issuer: SelfSigned, Name: "a", PublicKey: pub}, "must not have a PublicKey"},
		{"external without public key", &Certificate{Namespace: ns, Issuer: ca, Name: "a", Mode: CertificateExternal}, "got 0 bytes"},
		{"external with short key", &Certificate{Namespace: ns, Issuer: ca, Name: "a", Mode: CertificateExternal, PublicKey: pub[:16]}, "got 16 bytes"},
		{"external self-signed", &Certificate{Namespace: ns, Issuer: SelfSigned, Name: "a", Mode: CertificateExternal, PublicKey: pub}, "cannot be self-signed"},
		{"unknown mode", &Certificate{Namespace: ns, Issuer: SelfSigned, Name: "a", Mode: 7}, "unknown certificate mode"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.c.Ensure(ctx, kv)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("Ensure: %v, want error containing %q", err, tc.wantErr)
			}
		})
	}
	if all := stored(ctx, t, kv, ""); len(all) != 0 {
		t.Errorf("invalid certificates wrote to etcd: %d keys", len(all))
	}
}
