package etcdtest

import (
	"context"
	"testing"
	"time"
)

func TestServerSharesDataBetweenClients(t *testing.T) {
	s := Start(t)
	other := s.NewClient(t)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := s.Client.Put(ctx, "key", "value"); err != nil {
		t.Fatalf("Put: %v", err)
	}
	res, err := other.Get(ctx, "key")
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if len(res.Kvs) != 1 || string(res.Kvs[0].Value) != "value" {
		t.Fatalf("second client read %v, want key=value", res.Kvs)
	}
}

func TestServersAreIndependent(t *testing.T) {
	a, b := Start(t), Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := a.Client.Put(ctx, "only-in-a", "1"); err != nil {
		t.Fatalf("Put: %v", err)
	}
	res, err := b.Client.Get(ctx, "only-in-a")
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if len(res.Kvs) != 0 {
		t.Fatalf("server b sees a key written to server a")
	}
}
