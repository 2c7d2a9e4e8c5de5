package curator

import (
	"crypto/ed25519"
	"errors"
	"io"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"metropolis.dev/metropolis/node/core/identity"
	"metropolis.dev/metropolis/node/core/rpc"
	apb "metropolis.dev/metropolis/proto/api"
	"metropolis.dev/osbase/pki"
)

// ownerIdentity is the identity of the user who bootstrapped the cluster.
const ownerIdentity = "owner"

// aaaServer implements the AAA API on the leader: how users obtain their
// certificates.
type aaaServer struct {
	apb.UnimplementedAAAServer
	*leadership
}

func (s *aaaServer) Escrow(srv grpc.BidiStreamingServer[apb.EscrowFromClient, apb.EscrowFromServer]) error {
	ctx := srv.Context()
	req, err := srv.Recv()
	if errors.Is(err, io.EOF) {
		return invalidArgument("stream closed before parameters were sent")
	}
	if err != nil {
		return err
	}
	params := req.Parameters
	if params == nil {
		return invalidArgument("parameters missing in first message")
	}
	if params.RequestedIdentityName != ownerIdentity {
		return status.Errorf(codes.Unimplemented, "only the identity %q can be escrowed", ownerIdentity)
	}
	if err := validateKey("public_key", params.PublicKey); err != nil {
		return invalidArgument("%v", err)
	}
	pi := rpc.GetPeerInfo(ctx)
	if pi == nil || pi.Node != nil || pi.User != nil {
		return invalidArgument("escrow must be called without a cluster certificate")
	}
	if pi.Unauthenticated == nil || pi.Unauthenticated.SelfSignedPublicKey == nil {
		// Tell the client how to prove itself before refusing it.
		if err := srv.Send(&apb.EscrowFromServer{
			Needed: []apb.EscrowFromServer_ProofKind{apb.EscrowFromServer_PROOF_KIND_REFRESH_CERTIFICATE},
		}); err != nil {
			return err
		}
		return status.Error(codes.Unauthenticated, "present a self-signed certificate of the public key")
	}
	tlsKey := pi.Unauthenticated.SelfSignedPublicKey
	if !tlsKey.Equal(ed25519.PublicKey(params.PublicKey)) {
		return status.Error(codes.Unimplemented, "public_key differs from the key of the TLS certificate; proving other keys is not implemented")
	}
	owner, err := initialOwnerLoad(ctx, s.etcd)
	if err != nil {
		return rpcError(ctx, "loading initial owner", err)
	}
	if !owner.Equal(tlsKey) {
		return status.Error(codes.PermissionDenied, "the key is not the cluster owner's")
	}
	cert := &pki.Certificate{
		Namespace: &clusterPKINamespace,
		Issuer:    s.pki.ca,
		Template:  identity.UserCertificate(ownerIdentity),
		Name:      ownerIdentity,
		Mode:      pki.CertificateExternal,
		PublicKey: tlsKey,
	}
	der, err := cert.Ensure(ctx, s.etcd)
	if err != nil {
		return rpcError(ctx, "issuing owner certificate", err)
	}
	return srv.Send(&apb.EscrowFromServer{
		Fulfilled:          []apb.EscrowFromServer_ProofKind{apb.EscrowFromServer_PROOF_KIND_REFRESH_CERTIFICATE},
		EmittedCertificate: der,
	})
}
