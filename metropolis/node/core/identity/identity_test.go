package identity

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"metropolis.dev/osbase/pki"
	"metropolis.dev/osbase/test/etcdtest"
)

// testCA is a cluster CA made by signing directly, for tests that do not
// need certificates to live in etcd.
type testCA struct {
	cert *x509.Certificate
	key  ed25519.PrivateKey
}

func newTestCA(t testing.TB) *testCA {
	t.Helper()
	pub, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	template := CACertificate()
	der := sign(t, template, pub, nil, key)
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &testCA{cert: cert, key: key}
}

// issue signs template for pub with the CA and returns the DER certificate.
func (ca *testCA) issue(t testing.TB, template x509.Certificate, pub any) []byte {
	t.Helper()
	return sign(t, template, pub, ca.cert, ca.key)
}

// sign signs template for pub with key, as parent, or self-signed if parent
// is nil.
func sign(t testing.TB, template x509.Certificate, pub any, parent *x509.Certificate, key any) []byte {
	t.Helper()
	serial, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	if err != nil {
		t.Fatal(err)
	}
	template.SerialNumber = serial
	template.NotBefore = time.Unix(0, 0)
	template.NotAfter = time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC)
	if parent == nil {
		parent = &template
	}
	der, err := x509.CreateCertificate(rand.Reader, &template, parent, pub, key)
	if err != nil {
		t.Fatalf("signing certificate: %v", err)
	}
	return der
}

func newKey(t testing.TB) (ed25519.PublicKey, ed25519.PrivateKey) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return pub, priv
}

func parse(t testing.TB, der []byte) *x509.Certificate {
	t.Helper()
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

func TestNodeID(t *testing.T) {
	pub := make(ed25519.PublicKey, ed25519.PublicKeySize)
	for i := range pub {
		pub[i] = byte(i)
	}
	want := "metropolis-000102030405060708090a0b0c0d0e0f"
	if got := NodeID(pub); got != want {
		t.Errorf("NodeID = %q, want %q", got, want)
	}
}

func TestVerifyInCluster(t *testing.T) {
	ca := newTestCA(t)
	otherCA := newTestCA(t)
	nodePub, _ := newKey(t)
	nodeID := NodeID(nodePub)
	userPub, userKey := newKey(t)
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}

	withCN := func(template x509.Certificate, cn string) x509.Certificate {
		template.Subject = pkix.Name{CommonName: cn}
		return template
	}
	userWithDNS := UserCertificate("owner")
	userWithDNS.DNSNames = []string{"owner.example"}
	userWithServerAuth := UserCertificate("owner")
	userWithServerAuth.ExtKeyUsage = append(userWithServerAuth.ExtKeyUsage, x509.ExtKeyUsageServerAuth)
	nodeOnlyServerAuth := NodeCertificate(nodePub)
	nodeOnlyServerAuth.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	nodeExtraDNS := NodeCertificate(nodePub)
	nodeExtraDNS.DNSNames = append(nodeExtraDNS.DNSNames, "evil.example")
	otherPub, _ := newKey(t)

	for _, tc := range []struct {
		name     string
		der      []byte
		wantNode string
		wantUser string
	}{
		{"node", ca.issue(t, NodeCertificate(nodePub), nodePub), nodeID, ""},
		{"node with only ServerAuth", ca.issue(t, nodeOnlyServerAuth, nodePub), nodeID, ""},
		{"user", ca.issue(t, UserCertificate("owner"), userPub), "", "owner"},
		{"CA itself", ca.cert.Raw, "", ""},
		{"node of another cluster", otherCA.issue(t, NodeCertificate(nodePub), nodePub), "", ""},
		{"user of another cluster", otherCA.issue(t, UserCertificate("owner"), userPub), "", ""},
		{"node certificate for another key", ca.issue(t, NodeCertificate(otherPub), nodePub), "", ""},
		{"node with extra DNS name", ca.issue(t, nodeExtraDNS, nodePub), "", ""},
		{"node with common name of another node", ca.issue(t, withCN(NodeCertificate(nodePub), NodeID(otherPub)), nodePub), "", ""},
		{"user with DNS name", ca.issue(t, userWithDNS, userPub), "", ""},
		{"user with ServerAuth", ca.issue(t, userWithServerAuth, userPub), "", ""},
		{"user named like a node", ca.issue(t, UserCertificate(NodeID(userPub)), userPub), "", ""},
		{"user without name", ca.issue(t, UserCertificate(""), userPub), "", ""},
		{"self-signed user", sign(t, UserCertificate("owner"), userPub, nil, userKey), "", ""},
		{"ECDSA node", ca.issue(t, withCN(NodeCertificate(nodePub), nodeID), &ecKey.PublicKey), "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cert := parse(t, tc.der)
			id, err := VerifyNodeInCluster(cert, ca.cert)
			if tc.wantNode == "" && err == nil {
				t.Errorf("VerifyNodeInCluster accepted it as node %q", id)
			}
			if tc.wantNode != "" && (err != nil || id != tc.wantNode) {
				t.Errorf("VerifyNodeInCluster = %q, %v; want %q", id, err, tc.wantNode)
			}
			user, err := VerifyUserInCluster(cert, ca.cert)
			if tc.wantUser == "" && err == nil {
				t.Errorf("VerifyUserInCluster accepted it as user %q", user)
			}
			if tc.wantUser != "" && (err != nil || user != tc.wantUser) {
				t.Errorf("VerifyUserInCluster = %q, %v; want %q", user, err, tc.wantUser)
			}
		})
	}
}

// TestTemplatesWithPKI issues the templates the way the curator does, with
// osbase/pki in etcd, and checks that the results verify.
func TestTemplatesWithPKI(t *testing.T) {
	etcd := etcdtest.Start(t)
	ctx := context.Background()
	ns := pki.Namespaced("/cluster-pki/")
	ca := &pki.Certificate{Namespace: &ns, Issuer: pki.SelfSigned, Template: CACertificate(), Name: "ca"}
	nodePub, nodeKey := newKey(t)
	node := &pki.Certificate{
		Namespace: &ns, Issuer: ca, Name: "node", Mode: pki.CertificateExternal,
		Template: NodeCertificate(nodePub), PublicKey: nodePub,
	}
	userPub, _ := newKey(t)
	user := &pki.Certificate{
		Namespace: &ns, Issuer: ca, Name: "owner", Mode: pki.CertificateExternal,
		Template: UserCertificate("owner"), PublicKey: userPub,
	}
	caDER, err := ca.Ensure(ctx, etcd.Client)
	if err != nil {
		t.Fatal(err)
	}
	nodeDER, err := node.Ensure(ctx, etcd.Client)
	if err != nil {
		t.Fatal(err)
	}
	userDER, err := user.Ensure(ctx, etcd.Client)
	if err != nil {
		t.Fatal(err)
	}
	caCert := parse(t, caDER)
	if caCert.Subject.CommonName != "Metropolis Cluster CA" {
		t.Errorf("CA common name = %q", caCert.Subject.CommonName)
	}
	if id, err := VerifyNodeInCluster(parse(t, nodeDER), caCert); err != nil || id != NodeID(nodePub) {
		t.Errorf("VerifyNodeInCluster = %q, %v; want %q", id, err, NodeID(nodePub))
	}
	if id, err := VerifyUserInCluster(parse(t, userDER), caCert); err != nil || id != "owner" {
		t.Errorf("VerifyUserInCluster = %q, %v; want owner", id, err)
	}
	if _, err := NewNodeCredentials(nodeKey, nodeDER, caDER); err != nil {
		t.Errorf("NewNodeCredentials: %v", err)
	}
}

// TestNodeCertificateAsTLSClient checks that a node can authenticate with
// its certificate to a TLS server that verifies clients the standard way.
func TestNodeCertificateAsTLSClient(t *testing.T) {
	ca := newTestCA(t)
	serverCreds := newCredentials(t, ca)
	clientCreds := newCredentials(t, ca)
	roots := x509.NewCertPool()
	roots.AddCert(ca.cert)

	serverConn, clientConn := net.Pipe()
	defer serverConn.Close()
	defer clientConn.Close()
	server := tls.Server(serverConn, &tls.Config{
		Certificates: []tls.Certificate{serverCreds.TLSCredentials()},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    roots,
	})
	client := tls.Client(clientConn, &tls.Config{
		Certificates: []tls.Certificate{clientCreds.TLSCredentials()},
		RootCAs:      roots,
		ServerName:   serverCreds.ID(),
	})
	serverErr := make(chan error, 1)
	go func() { serverErr <- server.Handshake() }()
	if err := client.Handshake(); err != nil {
		t.Fatalf("client handshake: %v", err)
	}
	if err := <-serverErr; err != nil {
		t.Fatalf("server handshake: %v", err)
	}
	peer := server.ConnectionState().PeerCertificates[0]
	if id, err := VerifyNodeInCluster(peer, ca.cert); err != nil || id != clientCreds.ID() {
		t.Errorf("server sees client as %q, %v; want node %q", id, err, clientCreds.ID())
	}
}

func newCredentials(t testing.TB, ca *testCA) *NodeCredentials {
	t.Helper()
	pub, key := newKey(t)
	creds, err := NewNodeCredentials(key, ca.issue(t, NodeCertificate(pub), pub), ca.cert.Raw)
	if err != nil {
		t.Fatal(err)
	}
	return creds
}

func TestNewNodeCredentials(t *testing.T) {
	ca := newTestCA(t)
	otherCA := newTestCA(t)
	pub, key := newKey(t)
	_, otherKey := newKey(t)
	userPub, userKey := newKey(t)
	nodeDER := ca.issue(t, NodeCertificate(pub), pub)

	creds, err := NewNodeCredentials(key, nodeDER, ca.cert.Raw)
	if err != nil {
		t.Fatalf("NewNodeCredentials: %v", err)
	}
	if creds.ID() != NodeID(pub) || !creds.PublicKey().Equal(pub) || !creds.PrivateKey().Equal(key) {
		t.Errorf("credentials are for %s, want %s", creds.ID(), NodeID(pub))
	}
	if !creds.ClusterCA().Equal(ca.cert) || creds.Certificate().Subject.CommonName != NodeID(pub) {
		t.Errorf("credentials hold the wrong certificates")
	}

	for _, tc := range []struct {
		name          string
		key           ed25519.PrivateKey
		cert, ca      []byte
		wantErrSubstr string
	}{
		{"other key", otherKey, nodeDER, ca.cert.Raw, "not for the given private key"},
		{"other cluster", key, nodeDER, otherCA.cert.Raw, "not a node certificate of this cluster"},
		{"user certificate", userKey, ca.issue(t, UserCertificate("owner"), userPub), ca.cert.Raw, "not a node certificate"},
		{"garbage certificate", key, []byte("nope"), ca.cert.Raw, "parsing node certificate"},
		{"garbage CA", key, nodeDER, []byte("nope"), "parsing cluster CA certificate"},
		{"short key", key[:10], nodeDER, ca.cert.Raw, "private key is 10 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewNodeCredentials(tc.key, tc.cert, tc.ca)
			if err == nil || !strings.Contains(err.Error(), tc.wantErrSubstr) {
				t.Errorf("NewNodeCredentials error = %v, want one containing %q", err, tc.wantErrSubstr)
			}
		})
	}
}

func TestSaveAndRead(t *testing.T) {
	ca := newTestCA(t)
	creds := newCredentials(t, ca)
	dir := t.TempDir()

	if _, err := ReadNodeCredentials(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("ReadNodeCredentials of empty directory = %v, want a not-exist error", err)
	}
	if err := creds.Save(dir); err != nil {
		t.Fatalf("Save: %v", err)
	}
	// Saving again replaces the files in place.
	if err := creds.Save(dir); err != nil {
		t.Fatalf("second Save: %v", err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if got, want := strings.Join(names, ","), "ca.pem,cert-key.pem,cert.pem"; got != want {
		t.Errorf("directory holds %s, want %s", got, want)
	}
	info, err := os.Stat(filepath.Join(dir, "cert-key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	if mode := info.Mode().Perm(); mode != 0o600 {
		t.Errorf("key file mode = %o, want 600", mode)
	}

	read, err := ReadNodeCredentials(dir)
	if err != nil {
		t.Fatalf("ReadNodeCredentials: %v", err)
	}
	if read.ID() != creds.ID() || !read.PrivateKey().Equal(creds.PrivateKey()) ||
		!read.Certificate().Equal(creds.Certificate()) || !read.ClusterCA().Equal(creds.ClusterCA()) {
		t.Errorf("read back different credentials")
	}

	// A certificate file holding a key is rejected with the file's name.
	key, err := os.ReadFile(filepath.Join(dir, "cert-key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "cert.pem"), key, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadNodeCredentials(dir); err == nil || !strings.Contains(err.Error(), "cert.pem") {
		t.Errorf("ReadNodeCredentials with a key in cert.pem = %v, want an error naming cert.pem", err)
	}
}

// FuzzVerifyInCluster feeds arbitrary certificates to the verifiers, which
// see certificates presented by anybody who connects to a node.
func FuzzVerifyInCluster(f *testing.F) {
	ca := newTestCA(f)
	nodePub, _ := newKey(f)
	userPub, userKey := newKey(f)
	f.Add(ca.issue(f, NodeCertificate(nodePub), nodePub))
	f.Add(ca.issue(f, UserCertificate("owner"), userPub))
	f.Add(sign(f, UserCertificate("owner"), userPub, nil, userKey))
	f.Add(ca.cert.Raw)
	f.Fuzz(func(t *testing.T, der []byte) {
		cert, err := x509.ParseCertificate(der)
		if err != nil {
			return
		}
		nodeID, nodeErr := VerifyNodeInCluster(cert, ca.cert)
		_, userErr := VerifyUserInCluster(cert, ca.cert)
		if nodeErr == nil && userErr == nil {
			t.Fatal("certificate verifies as both node and user")
		}
		if nodeErr == nil {
			pub, ok := cert.PublicKey.(ed25519.PublicKey)
			if !ok || NodeID(pub) != nodeID {
				t.Fatalf("node %q does not match the certificate's key", nodeID)
			}
		}
		if (nodeErr == nil || userErr == nil) && cert.CheckSignatureFrom(ca.cert) != nil {
			t.Fatal("accepted a certificate the CA did not sign")
		}
	})
}
