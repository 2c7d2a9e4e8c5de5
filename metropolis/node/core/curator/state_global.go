package curator

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/protobuf/proto"

	ppb "metropolis.dev/metropolis/node/core/curator/proto/private"
)

// Cluster-wide values, each stored once.
const (
	// initialOwnerKey holds the ppb.InitialOwner given at bootstrap.
	initialOwnerKey = "/global/initial_owner"
	// registerTicketKey holds the ppb.RegisterTicket, created on first use.
	registerTicketKey = "/global/register_ticket"
)

// registerTicketSize is the number of random bytes in a register ticket.
const registerTicketSize = 32

// maxRegisterTicketSize bounds tickets accepted from callers. Tickets are
// registerTicketSize bytes; the slack lets the format grow.
const maxRegisterTicketSize = 256

// initialOwnerLoad reads the public key of the cluster's initial owner.
func initialOwnerLoad(ctx context.Context, kv clientv3.KV) (ed25519.PublicKey, error) {
	res, err := kv.Get(ctx, initialOwnerKey)
	if err != nil {
		return nil, fmt.Errorf("reading initial owner: %w", err)
	}
	if len(res.Kvs) == 0 {
		return nil, errors.New("cluster has no initial owner")
	}
	var owner ppb.InitialOwner
	if err := proto.Unmarshal(res.Kvs[0].Value, &owner); err != nil {
		return nil, fmt.Errorf("decoding initial owner: %w", err)
	}
	if len(owner.PublicKey) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("stored initial owner key has %d bytes", len(owner.PublicKey))
	}
	return owner.PublicKey, nil
}

// registerTicketLoad reads the register ticket, returning nil if none was
// created yet.
func registerTicketLoad(ctx context.Context, kv clientv3.KV) ([]byte, error) {
	res, err := kv.Get(ctx, registerTicketKey)
	if err != nil {
		return nil, fmt.Errorf("reading register ticket: %w", err)
	}
	if len(res.Kvs) == 0 {
		return nil, nil
	}
	var ticket ppb.RegisterTicket
	if err := proto.Unmarshal(res.Kvs[0].Value, &ticket); err != nil {
		return nil, fmt.Errorf("decoding register ticket: %w", err)
	}
	if len(ticket.Opaque) == 0 {
		return nil, errors.New("stored register ticket is empty")
	}
	return ticket.Opaque, nil
}
