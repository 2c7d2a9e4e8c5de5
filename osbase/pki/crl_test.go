package pki

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"math/big"
	"net"
	"strings"
	"sync"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"

	"metropolis.dev/osbase/test/etcdtest"
)

// revocableLeaves returns n client certificates issued by ca.
func revocableLeaves(ctx context.Context, t *testing.T, kv clientv3.KV, ca *Certificate, n int) []*x509.Certificate {
	t.Helper()
	certs := make([]*x509.Certificate, n)
	for i := range certs {
		name := fmt.Sprintf("leaf-%d", i)
		certs[i] = mustEnsure(ctx, t, kv, &Certificate{Namespace: ca.Namespace, Issuer: ca, Name: name, Template: Client(name)})
	}
	return certs
}

func mustCRL(ctx context.Context, t *testing.T, kv clientv3.KV, ca *Certificate) *x509.RevocationList {
	t.Helper()
	crl, err := ca.CRL(ctx, kv)
	if err != nil {
		t.Fatalf("CRL: %v", err)
	}
	return crl
}

func TestRevoke(t *testing.T) {
	ctx := testContext(t)
	kv := etcdtest.Start(t).Client
	ns := testNamespace()
	ca := testCA(ns, "ca")
	caCert := mustEnsure(ctx, t, kv, ca)
	leaves := revocableLeaves(ctx, t, kv, ca, 2)
	revoked, kept := leaves[0], leaves[1]

	initial := mustCRL(ctx, t, kv, ca)
	if initial.Number.Cmp(big.NewInt(1)) != 0 || len(initial.RevokedCertificateEntries) != 0 {
		t.Fatalf("initial CRL: number %v with %d entries, want number 1 without entries", initial.Number, len(initial.RevokedCertificateEntries))
	}

	if err := ca.Revoke(ctx, kv, revoked); err != nil {
		t.Fatalf("Revoke: %v", err)
	}
	crl := mustCRL(ctx, t, kv, ca)
	if err := crl.CheckSignatureFrom(caCert); err != nil {
		t.Errorf("CRL not signed by CA: %v", err)
	}
	if crl.Number.Cmp(initial.Number) <= 0 {
		t.Errorf("CRL number %v after revocation, want more than %v", crl.Number, initial.Number)
	}
	if !IsRevoked(crl, revoked) {
		t.Errorf("revoked certificate is not in CRL")
	}
	if IsRevoked(crl, kept) {
		t.Errorf("certificate that was not revoked is in CRL")
	}

	// Revoking again changes nothing, not even the CRL number.
	if err := ca.Revoke(ctx, kv, revoked); err != nil {
		t.Fatalf("second Revoke: %v", err)
	}
	if again := mustCRL(ctx, t, kv, ca); again.Number.Cmp(crl.Number) != 0 || len(again.RevokedCertificateEntries) != 1 {
		t.Errorf("after revoking twice: number %v with %d entries, want %v with 1", again.Number, len(again.RevokedCertificateEntries), crl.Number)
	}

	// A restarted process sees the same CRL.
	if restarted := mustCRL(ctx, t, kv, testCA(ns, "ca")); !IsRevoked(restarted, revoked) {
		t.Errorf("revocation lost after restart")
	}
}

func TestRevokeErrors(t *testing.T) {
	ctx := testContext(t)
	kv := etcdtest.Start(t).Client
	ns := testNamespace()
	ca, otherCA := testCA(ns, "ca"), testCA(ns, "other-ca")
	leaf := &Certificate{Namespace: ns, Issuer: ca, Name: "leaf", Template: Client("leaf")}
	leafCert := mustEnsure(ctx, t, kv, leaf)

	for _, tc := range []struct {
		name    string
		ca      *Certificate
		cert    *x509.Certificate
		wantErr string
	}{
		{"certificate of another CA", otherCA, leafCert, "not issued by this CA"},
		{"with a leaf", leaf, leafCert, "not issued by this CA"},
		{"nil certificate", ca, nil, "no certificate given"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.ca.Revoke(ctx, kv, tc.cert)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("Revoke: %v, want error containing %q", err, tc.wantErr)
			}
		})
	}
	if _, err := leaf.CRL(ctx, kv); err == nil {
		t.Errorf("CRL of a leaf certificate succeeded")
	}
	if IsRevoked(mustCRL(ctx, t, kv, otherCA), leafCert) {
		t.Errorf("failed revocation ended up in a CRL")
	}
}

// TestConcurrentRevoke revokes different certificates from two etcd clients
// at the same time. Every revocation has to survive.
func TestConcurrentRevoke(t *testing.T) {
	const perClient = 10
	ctx := testContext(t)
	s := etcdtest.Start(t)
	ns := testNamespace()
	leaves := revocableLeaves(ctx, t, s.Client, testCA(ns, "ca"), 2*perClient)

	kvs := []clientv3.KV{s.Client, s.NewClient(t)}
	var (
		wg    sync.WaitGroup
		start = make(chan struct{})
		errs  [2]error
	)
	for i, kv := range kvs {
		wg.Go(func() {
			ca := testCA(ns, "ca")
			<-start
			for _, leaf := range leaves[i*perClient : (i+1)*perClient] {
				if errs[i] = ca.Revoke(ctx, kv, leaf); errs[i] != nil {
					return
				}
			}
		})
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("client %d: %v", i, err)
		}
	}

	crl := mustCRL(ctx, t, s.Client, testCA(ns, "ca"))
	for i, leaf := range leaves {
		if !IsRevoked(crl, leaf) {
			t.Errorf("revocation of leaf %d was lost", i)
		}
	}
	// Every revocation signed exactly one new CRL.
	if want := big.NewInt(1 + 2*perClient); crl.Number.Cmp(want) != 0 {
		t.Errorf("CRL number %v, want %v", crl.Number, want)
	}
}

func TestIsRevoked(t *testing.T) {
	serial := big.NewInt(42)
	crl := &x509.RevocationList{
		RawIssuer:                 []byte("issuer"),
		RevokedCertificateEntries: []x509.RevocationListEntry{{SerialNumber: serial}},
	}
	for _, tc := range []struct {
		name string
		cert *x509.Certificate
		want bool
	}{
		{"listed", &x509.Certificate{RawIssuer: []byte("issuer"), SerialNumber: big.NewInt(42)}, true},
		{"other serial", &x509.Certificate{RawIssuer: []byte("issuer"), SerialNumber: big.NewInt(43)}, false},
		{"other issuer", &x509.Certificate{RawIssuer: []byte("other"), SerialNumber: big.NewInt(42)}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := IsRevoked(crl, tc.cert); got != tc.want {
				t.Errorf("IsRevoked: %v, want %v", got, tc.want)
			}
		})
	}
}

func TestRejectRevokedFailsClosed(t *testing.T) {
	if err := RejectRevoked(&x509.RevocationList{})(nil, nil); err == nil {
		t.Errorf("RejectRevoked accepted a peer without verified chains")
	}
}

// TestTLSRejectsRevoked runs real TLS handshakes on loopback against a server
// that requires client certificates and checks them against the CRL.
func TestTLSRejectsRevoked(t *testing.T) {
	ctx := testContext(t)
	kv := etcdtest.Start(t).Client
	ns := testNamespace()
	ca := testCA(ns, "ca")
	caCert := mustEnsure(ctx, t, kv, ca)

	tlsCert := func(c *Certificate) tls.Certificate {
		t.Helper()
		der, err := c.Ensure(ctx, kv)
		if err != nil {
			t.Fatalf("Ensure: %v", err)
		}
		key, err := c.PrivateKey()
		if err != nil {
			t.Fatalf("PrivateKey: %v", err)
		}
		return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
	}
	server := tlsCert(&Certificate{Namespace: ns, Issuer: ca, Name: "server",
		Template: Server(nil, []net.IP{net.IPv4(127, 0, 0, 1)})})
	good := tlsCert(&Certificate{Namespace: ns, Issuer: ca, Name: "good", Template: Client("good")})
	bad := tlsCert(&Certificate{Namespace: ns, Issuer: ca, Name: "bad", Template: Client("bad")})

	badCert, err := x509.ParseCertificate(bad.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := ca.Revoke(ctx, kv, badCert); err != nil {
		t.Fatalf("Revoke: %v", err)
	}
	crl := mustCRL(ctx, t, kv, ca)
	pool := x509.NewCertPool()
	pool.AddCert(caCert)

	for _, tc := range []struct {
		name        string
		client      tls.Certificate
		wantRevoked bool
	}{
		{"valid client", good, false},
		{"revoked client", bad, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := handshake(ctx, t, &tls.Config{
				Certificates:          []tls.Certificate{server},
				ClientAuth:            tls.RequireAndVerifyClientCert,
				ClientCAs:             pool,
				VerifyPeerCertificate: RejectRevoked(crl),
			}, &tls.Config{
				Certificates: []tls.Certificate{tc.client},
				RootCAs:      pool,
				ServerName:   "127.0.0.1",
			})
			switch {
			case tc.wantRevoked && (err == nil || !strings.Contains(err.Error(), "revoked")):
				t.Errorf("server handshake: %v, want rejection as revoked", err)
			case !tc.wantRevoked && err != nil:
				t.Errorf("server handshake: %v, want success", err)
			}
		})
	}
}

// handshake connects a TLS client to a TLS server over loopback TCP and
// returns the server's handshake result. With TLS 1.3 the client completes
// its side before the server has looked at the client certificate, so only
// the server knows whether that certificate was accepted.
func handshake(ctx context.Context, t *testing.T, serverConfig, clientConfig *tls.Config) error {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("Listen: %v", err)
	}
	defer ln.Close()

	serverErr := make(chan error, 1)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			serverErr <- err
			return
		}
		defer conn.Close()
		serverErr <- tls.Server(conn, serverConfig).HandshakeContext(ctx)
	}()

	conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", ln.Addr().String())
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	defer conn.Close()
	client := tls.Client(conn, clientConfig)
	if err := client.HandshakeContext(ctx); err != nil {
		// The server's error says why; the client only saw an alert.
		t.Logf("client handshake: %v", err)
	}
	return <-serverErr
}
