package rpc

import (
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"metropolis.dev/metropolis/node/core/identity"
	apb "metropolis.dev/metropolis/proto/api"
	"metropolis.dev/osbase/pki"
)

// ServerSecurity is how a node serves the cluster's APIs: with its own
// certificate, authenticating callers against the cluster CA and the
// cluster's revocation list, and authorizing them by the methods' policies.
type ServerSecurity struct {
	// NodeCredentials of the serving node. Its cluster CA is the one callers
	// are authenticated against.
	NodeCredentials *identity.NodeCredentials
	// RevocationList returns the cluster's current CRL (nil: nothing
	// revoked). Checked on every call, so a revoked certificate is refused as
	// soon as the CRL changes.
	RevocationList func() *x509.RevocationList
	// UserPermissions maps a user identity to its permissions; nil means
	// DefaultUserPermissions.
	UserPermissions func(identity string) Permissions
}

// unloggedMethods are not logged per call: reading the node's logs through
// a stream would otherwise log about itself.
var unloggedMethods = map[string]bool{
	apb.NodeManagement_Logs_FullMethodName: true,
}

// GRPCOptions returns the options for a grpc.Server that serves with s: TLS
// with the node's certificate, asking callers for a certificate without
// requiring one, and interceptors that authenticate and authorize every call
// and log it to logger (nil: no logging).
func (s *ServerSecurity) GRPCOptions(logger *slog.Logger) []grpc.ServerOption {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	srv := &server{security: s, logger: logger}
	tlsConfig := &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{s.NodeCredentials.TLSCredentials()},
		// Callers' certificates are checked per call by the interceptors:
		// callers of unauthenticated methods present self-signed ones or
		// none, and revocation has to reach connections already open.
		ClientAuth: tls.RequestClientCert,
	}
	return []grpc.ServerOption{
		grpc.Creds(credentials.NewTLS(tlsConfig)),
		serverKeepalive(),
		grpc.ChainUnaryInterceptor(srv.unaryInterceptor),
		grpc.ChainStreamInterceptor(srv.streamInterceptor),
	}
}

type server struct {
	security *ServerSecurity
	logger   *slog.Logger
	policies policyCache
}

func (s *server) unaryInterceptor(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	start := time.Now()
	ctx, pi, err := s.authorize(ctx, info.FullMethod)
	var res any
	if err == nil {
		res, err = handler(ctx, req)
	}
	s.logCall(ctx, info.FullMethod, pi, start, err)
	return res, err
}

func (s *server) streamInterceptor(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	start := time.Now()
	ctx, pi, err := s.authorize(ss.Context(), info.FullMethod)
	if err == nil {
		err = handler(srv, &serverStream{ServerStream: ss, ctx: ctx})
	}
	s.logCall(ctx, info.FullMethod, pi, start, err)
	return err
}

// serverStream hands the context carrying the PeerInfo to stream handlers.
type serverStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *serverStream) Context() context.Context {
	return s.ctx
}

// authorize establishes who calls fullMethod and whether they may. It
// returns ctx with the caller's PeerInfo, which it also returns for logging
// (nil if the caller was refused before being identified).
func (s *server) authorize(ctx context.Context, fullMethod string) (context.Context, *PeerInfo, error) {
	pol, err := s.policies.lookup(fullMethod)
	if err != nil {
		// PermissionDenied rather than Unimplemented: the method is served,
		// nobody is permitted to call it, and clients must not take it for
		// an older server that lacks the method.
		return ctx, nil, status.Errorf(codes.PermissionDenied, "%s is refused to every caller: %v", fullMethod, err)
	}
	certs := peerCertificates(ctx)
	pi, authErr := s.identify(certs)
	if pol.allowUnauthenticated {
		if pi == nil {
			pi = &PeerInfo{}
		}
		pi.Unauthenticated = &PeerInfoUnauthenticated{SelfSignedPublicKey: selfSignedKey(certs)}
		return withPeerInfo(ctx, pi), pi, nil
	}
	if authErr != nil {
		return ctx, nil, status.Errorf(codes.Unauthenticated, "%s needs a node or user certificate of this cluster: %v", fullMethod, authErr)
	}
	if err := pi.CheckPermissions(pol.need); err != nil {
		return ctx, pi, err
	}
	return withPeerInfo(ctx, pi), pi, nil
}

var errNoCertificate = errors.New("no certificate presented")

// identify maps the certificates a caller presented (leaf first) to a node
// or user of the cluster, or says why they are neither.
func (s *server) identify(certs []*x509.Certificate) (*PeerInfo, error) {
	if len(certs) == 0 {
		return nil, errNoCertificate
	}
	leaf, ca := certs[0], s.security.NodeCredentials.ClusterCA()
	if err := leaf.CheckSignatureFrom(ca); err != nil {
		return nil, errors.New("certificate was not issued by this cluster's CA")
	}
	if s.security.RevocationList != nil {
		if crl := s.security.RevocationList(); crl != nil && pki.IsRevoked(crl, leaf) {
			return nil, fmt.Errorf("certificate %x (%s) is revoked", leaf.SerialNumber, leaf.Subject)
		}
	}
	id, nodeErr := identity.VerifyNodeInCluster(leaf, ca)
	if nodeErr == nil {
		return &PeerInfo{Node: &PeerInfoNode{
			ID:          id,
			PublicKey:   leaf.PublicKey.(ed25519.PublicKey),
			Permissions: NodePermissions(),
		}}, nil
	}
	user, userErr := identity.VerifyUserInCluster(leaf, ca)
	if userErr == nil {
		permissions := DefaultUserPermissions
		if s.security.UserPermissions != nil {
			permissions = s.security.UserPermissions
		}
		return &PeerInfo{User: &PeerInfoUser{
			Identity:    user,
			Permissions: permissions(user),
		}}, nil
	}
	return nil, fmt.Errorf("%w; %w", nodeErr, userErr)
}

// peerCertificates returns the certificates the caller presented in the TLS
// handshake, leaf first.
func peerCertificates(ctx context.Context) []*x509.Certificate {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return nil
	}
	tlsInfo, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok {
		return nil
	}
	return tlsInfo.State.PeerCertificates
}

// selfSignedKey returns the public key of the caller's leaf certificate if
// that is a self-signed ed25519 certificate. The handshake has already
// proven that the caller holds the matching private key.
func selfSignedKey(certs []*x509.Certificate) ed25519.PublicKey {
	if len(certs) == 0 {
		return nil
	}
	leaf := certs[0]
	pub, ok := leaf.PublicKey.(ed25519.PublicKey)
	if !ok {
		return nil
	}
	// Not CheckSignatureFrom: that wants the issuer to be a CA, which a bare
	// key's certificate is not.
	if leaf.CheckSignature(leaf.SignatureAlgorithm, leaf.RawTBSCertificate, leaf.Signature) != nil {
		return nil
	}
	return pub
}

// logCall logs one line about a finished call.
func (s *server) logCall(ctx context.Context, method string, pi *PeerInfo, start time.Time, err error) {
	if unloggedMethods[method] {
		return
	}
	code := status.Code(err)
	level := slog.LevelInfo
	if code == codes.Unauthenticated || code == codes.PermissionDenied {
		level = slog.LevelWarn
	}
	attrs := []slog.Attr{
		slog.String("method", method),
		slog.String("peer", pi.String()),
		slog.String("code", code.String()),
		slog.Duration("duration", time.Since(start)),
	}
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		attrs = append(attrs, slog.String("addr", p.Addr.String()))
	}
	if err != nil {
		attrs = append(attrs, slog.String("error", status.Convert(err).Message()))
	}
	s.logger.LogAttrs(ctx, level, "handled RPC", attrs...)
}
