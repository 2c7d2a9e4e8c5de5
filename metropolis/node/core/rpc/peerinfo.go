package rpc

import (
	"context"
	"crypto/ed25519"
	"encoding/hex"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// PeerInfo describes the caller of an RPC, as established by the server's
// interceptors. At most one of Node and User is set. Unauthenticated is set
// for methods that allow unauthenticated callers, even when the caller also
// presented a valid cluster certificate.
type PeerInfo struct {
	// Node is set if the caller presented a valid node certificate.
	Node *PeerInfoNode
	// User is set if the caller presented a valid user certificate.
	User *PeerInfoUser
	// Unauthenticated is set if the method allows unauthenticated callers.
	Unauthenticated *PeerInfoUnauthenticated
}

// PeerInfoNode is a caller authenticated as a node of the cluster.
type PeerInfoNode struct {
	// ID of the node.
	ID string
	// PublicKey of the node.
	PublicKey ed25519.PublicKey
	// Permissions the node holds.
	Permissions Permissions
}

// PeerInfoUser is a caller authenticated as a user of the cluster.
type PeerInfoUser struct {
	// Identity of the user, for example "owner".
	Identity string
	// Permissions the user holds.
	Permissions Permissions
}

// PeerInfoUnauthenticated is a caller of a method that allows
// unauthenticated callers.
type PeerInfoUnauthenticated struct {
	// SelfSignedPublicKey is the public key of the self-signed certificate
	// the caller presented, which the TLS handshake proved the caller holds
	// the private key of. It is nil if the caller presented no certificate or
	// one that is not a self-signed ed25519 certificate.
	SelfSignedPublicKey ed25519.PublicKey
}

type peerInfoKey struct{}

// GetPeerInfo returns the caller of the RPC being handled in ctx, or nil if
// ctx does not belong to an RPC served with ServerSecurity.
func GetPeerInfo(ctx context.Context) *PeerInfo {
	p, _ := ctx.Value(peerInfoKey{}).(*PeerInfo)
	return p
}

func withPeerInfo(ctx context.Context, p *PeerInfo) context.Context {
	return context.WithValue(ctx, peerInfoKey{}, p)
}

// CheckPermissions returns nil if the caller holds every permission in need,
// and otherwise a PermissionDenied status error naming what is missing.
// Callers that are not authenticated hold no permissions.
func (p *PeerInfo) CheckPermissions(need Permissions) error {
	var have Permissions
	switch {
	case p == nil:
	case p.Node != nil:
		have = p.Node.Permissions
	case p.User != nil:
		have = p.User.Permissions
	}
	var missing Permissions
	for _, perm := range need.sorted() {
		if !have[perm] {
			if missing == nil {
				missing = Permissions{}
			}
			missing[perm] = true
		}
	}
	if missing != nil {
		return status.Errorf(codes.PermissionDenied, "%s lacks permission %s", p, missing)
	}
	return nil
}

// String describes the caller for logs and error messages.
func (p *PeerInfo) String() string {
	switch {
	case p == nil:
		return "unidentified caller"
	case p.Node != nil:
		return "node " + p.Node.ID
	case p.User != nil:
		return "user " + p.User.Identity
	case p.Unauthenticated != nil && p.Unauthenticated.SelfSignedPublicKey != nil:
		return "unauthenticated caller with key " + hex.EncodeToString(p.Unauthenticated.SelfSignedPublicKey)
	default:
		return "unauthenticated caller"
	}
}
