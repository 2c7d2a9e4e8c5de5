package curator

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"metropolis.dev/metropolis/node/core/consensus"
	"metropolis.dev/metropolis/node/core/identity"
)

// leadership is everything a curator holds while it is the leader. It lives
// exactly as long as one term of leadership: a curator that loses and later
// regains leadership gets a new one, with fresh in-memory state.
type leadership struct {
	// nodeID of the node this curator runs on.
	nodeID string
	// lockKey and lockRev identify the election key this curator holds:
	// every write is conditional on that key still existing at the same
	// revision, so that a curator that lost leadership without noticing
	// yet cannot write anymore.
	lockKey string
	lockRev int64
	// since is when leadership was acquired.
	since time.Time

	etcd        *clientv3.Client
	consensus   *consensus.Status
	credentials *identity.NodeCredentials
	pki         *curatorPKI

	// Read-modify-write cycles of each kind of state are serialized within
	// the leader by these; the leadership condition on every write
	// serializes them across curators.
	muNodes          sync.Mutex
	muCluster        sync.Mutex
	muRegisterTicket sync.Mutex

	heartbeats heartbeats
	nodes      *nodeCache
}

// errLostLeadership is returned by txnAsLeader when the curator is no longer
// the leader.
var errLostLeadership = errors.New("curator lost leadership")

// txnAsLeader runs ops in an etcd transaction that only succeeds while this
// curator holds leadership.
//
// Issuing and revoking certificates are the only writes outside it: osbase/pki
// makes them with transactions of its own. Both are safe without the
// leadership condition: an issued certificate is only handed out once the
// node record listing it was written as leader, and revoking twice is
// harmless.
func (l *leadership) txnAsLeader(ctx context.Context, ops ...clientv3.Op) (*clientv3.TxnResponse, error) {
	res, err := l.etcd.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(l.lockKey), "=", l.lockRev)).
		Then(ops...).
		Commit()
	if err != nil {
		return nil, fmt.Errorf("etcd transaction: %w", err)
	}
	if !res.Succeeded {
		return nil, errLostLeadership
	}
	return res, nil
}

// writeNodes stores ops that change node records as leader, and makes the
// node cache wait for the write before serving reads, so that a caller sees
// its own writes.
func (l *leadership) writeNodes(ctx context.Context, ops ...clientv3.Op) error {
	res, err := l.txnAsLeader(ctx, ops...)
	if err != nil {
		return err
	}
	l.nodes.expect(res.Header.Revision)
	return nil
}

// rpcError turns an internal error into a gRPC status error. Errors that
// already are status errors pass unchanged; everything else is a failure of
// the curator or its etcd, which the caller may retry.
func rpcError(ctx context.Context, what string, err error) error {
	if _, ok := status.FromError(err); ok {
		return err
	}
	switch {
	case errors.Is(err, errLostLeadership):
		return status.Errorf(codes.Unavailable, "%s: %v", what, err)
	case ctx.Err() != nil && errors.Is(err, context.Canceled):
		return status.Errorf(codes.Canceled, "%s: %v", what, err)
	case ctx.Err() != nil && errors.Is(err, context.DeadlineExceeded):
		return status.Errorf(codes.DeadlineExceeded, "%s: %v", what, err)
	}
	return status.Errorf(codes.Unavailable, "%s: %v", what, err)
}
