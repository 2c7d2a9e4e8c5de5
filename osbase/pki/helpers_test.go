package pki

import (
	"context"
	"crypto/x509"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// testTimeout is generous because tests run under -race on small machines.
const testTimeout = 2 * time.Minute

func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

func testNamespace() *Namespace {
	ns := Namespaced("/test-pki/")
	return &ns
}

func testCA(ns *Namespace, name string) *Certificate {
	return &Certificate{Namespace: ns, Issuer: SelfSigned, Template: CA("Test CA " + name), Name: name}
}

func mustEnsure(ctx context.Context, t *testing.T, kv clientv3.KV, c *Certificate) *x509.Certificate {
	t.Helper()
	der, err := c.Ensure(ctx, kv)
	if err != nil {
		t.Fatalf("Ensure: %v", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("parsing certificate %q: %v", c.Name, err)
	}
	return cert
}

// stored returns everything stored in etcd below prefix, by key.
func stored(ctx context.Context, t *testing.T, kv clientv3.KV, prefix string) map[string]*mvccpb.KeyValue {
	t.Helper()
	res, err := kv.Get(ctx, prefix, clientv3.WithPrefix())
	if err != nil {
		t.Fatalf("listing etcd: %v", err)
	}
	kvs := make(map[string]*mvccpb.KeyValue)
	for _, kv := range res.Kvs {
		kvs[string(kv.Key)] = kv
	}
	return kvs
}
