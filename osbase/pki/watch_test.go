package pki

import (
	"context"
	"errors"
	"math/big"
	"testing"
	"time"

	"metropolis.dev/osbase/test/etcdtest"
)

func TestWatchCRL(t *testing.T) {
	ctx := testContext(t)
	s := etcdtest.Start(t)
	ns := testNamespace()
	ca := testCA(ns, "ca")
	caCert := mustEnsure(ctx, t, s.Client, ca)
	leaves := revocableLeaves(ctx, t, s.Client, ca, 2)

	w := testCA(ns, "ca").WatchCRL(s.NewClient(t))
	defer w.Close()

	initial, err := w.Get(ctx)
	if err != nil {
		t.Fatalf("first Get: %v", err)
	}
	if len(initial.RevokedCertificateEntries) != 0 {
		t.Fatalf("initial CRL has %d entries, want none", len(initial.RevokedCertificateEntries))
	}

	// Nothing changed, so Get blocks until its context ends.
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	_, err = w.Get(short)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Get without a change: %v, want deadline exceeded", err)
	}

	// Revocations from another client arrive in order, while Get waits and
	// before it is called.
	for i, leaf := range leaves {
		revoked := make(chan error, 1)
		if i == 0 {
			go func() { revoked <- ca.Revoke(ctx, s.Client, leaf) }()
		} else {
			revoked <- ca.Revoke(ctx, s.Client, leaf)
		}
		crl, err := w.Get(ctx)
		if err != nil {
			t.Fatalf("Get after revocation %d: %v", i, err)
		}
		if err := <-revoked; err != nil {
			t.Fatalf("Revoke %d: %v", i, err)
		}
		if !IsRevoked(crl, leaf) {
			t.Errorf("watched CRL misses revocation %d", i)
		}
		if err := crl.CheckSignatureFrom(caCert); err != nil {
			t.Errorf("watched CRL not signed by CA: %v", err)
		}
	}

	// A new watcher starts with the current CRL.
	fresh := ca.WatchCRL(s.Client)
	defer fresh.Close()
	crl, err := fresh.Get(ctx)
	if err != nil {
		t.Fatalf("Get on new watcher: %v", err)
	}
	for i, leaf := range leaves {
		if !IsRevoked(crl, leaf) {
			t.Errorf("new watcher's CRL misses revocation %d", i)
		}
	}
}

func TestWatchCRLClose(t *testing.T) {
	ctx := testContext(t)
	s := etcdtest.Start(t)
	ca := testCA(testNamespace(), "ca")
	w := ca.WatchCRL(s.Client)
	if _, err := w.Get(ctx); err != nil {
		t.Fatalf("Get: %v", err)
	}

	blocked := make(chan error, 1)
	go func() {
		_, err := w.Get(ctx)
		blocked <- err
	}()
	w.Close()
	if err := <-blocked; err == nil || errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("blocked Get after Close: %v, want watcher closed", err)
	}
	if _, err := w.Get(ctx); err == nil {
		t.Errorf("Get after Close succeeded")
	}
}

// TestWatchCRLRejectsForgery stores a CRL signed by another CA where the
// watched CA's CRL belongs. The watcher must not hand it out.
func TestWatchCRLRejectsForgery(t *testing.T) {
	ctx := testContext(t)
	s := etcdtest.Start(t)
	ns := testNamespace()
	ca, forger := testCA(ns, "ca"), testCA(ns, "forger")
	mustEnsure(ctx, t, s.Client, ca)
	forgerCert := mustEnsure(ctx, t, s.Client, forger)
	forgerKey, err := forger.PrivateKey()
	if err != nil {
		t.Fatal(err)
	}

	w := ca.WatchCRL(s.Client)
	defer w.Close()
	if _, err := w.Get(ctx); err != nil {
		t.Fatalf("first Get: %v", err)
	}
	forged, err := signCRL(forgerCert, forgerKey, big.NewInt(100), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Client.Put(ctx, ns.crlKey("ca"), string(forged)); err != nil {
		t.Fatal(err)
	}
	if crl, err := w.Get(ctx); err == nil {
		t.Errorf("Get returned forged CRL number %v", crl.Number)
	}
}
