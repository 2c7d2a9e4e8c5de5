package rpc

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"math/big"
	"time"

	"google.golang.org/grpc/credentials"

	"metropolis.dev/metropolis/node/core/identity"
	apb "metropolis.dev/metropolis/proto/api"
)

// CredentialsOption says how a client verifies the server it connects to.
// Clients must pass either WantRemoteCluster (optionally with
// WantRemoteNode) or WantInsecure; without, every handshake fails, so that
// forgetting to verify the server cannot go unnoticed.
type CredentialsOption func(*clientOptions)

type clientOptions struct {
	cluster  *x509.Certificate
	node     string
	insecure bool
}

// WantRemoteCluster makes the client accept only servers presenting a node
// certificate issued by the cluster CA ca.
func WantRemoteCluster(ca *x509.Certificate) CredentialsOption {
	return func(o *clientOptions) { o.cluster = ca }
}

// WantRemoteNode makes the client accept only the node with the given ID. It
// needs WantRemoteCluster to know the cluster the node belongs to.
func WantRemoteNode(id string) CredentialsOption {
	return func(o *clientOptions) { o.node = id }
}

// WantInsecure makes the client accept any server without verifying it.
// It is only for what a client needs before it can trust the cluster: to
// fetch the cluster CA certificate and to have an operator confirm its
// fingerprint (trust on first use).
func WantInsecure() CredentialsOption {
	return func(o *clientOptions) { o.insecure = true }
}

// verifier returns the check of the server's certificate the options ask
// for.
func (o *clientOptions) verifier() (func(tls.ConnectionState) error, error) {
	switch {
	case o.insecure && (o.cluster != nil || o.node != ""):
		return nil, errors.New("WantInsecure conflicts with WantRemoteCluster and WantRemoteNode")
	case o.insecure:
		return func(tls.ConnectionState) error { return nil }, nil
	case o.cluster == nil && o.node != "":
		return nil, errors.New("WantRemoteNode needs WantRemoteCluster")
	case o.cluster == nil:
		return nil, errors.New("no server verification chosen: pass WantRemoteCluster or WantInsecure")
	}
	ca, want := o.cluster, o.node
	return func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return errors.New("server presented no certificate")
		}
		id, err := identity.VerifyNodeInCluster(cs.PeerCertificates[0], ca)
		if err != nil {
			return fmt.Errorf("server is not a node of the expected cluster: %w", err)
		}
		if want != "" && id != want {
			return fmt.Errorf("server is node %s, want %s", id, want)
		}
		return nil
	}, nil
}

// ClientTLSConfig returns a TLS client configuration presenting cert (if
// not nil) and verifying the server as opts say.
func ClientTLSConfig(cert *tls.Certificate, opts ...CredentialsOption) (*tls.Config, error) {
	var o clientOptions
	for _, opt := range opts {
		opt(&o)
	}
	verify, err := o.verifier()
	if err != nil {
		return nil, err
	}
	config := &tls.Config{
		MinVersion: tls.VersionTLS13,
		// Nodes are reached by address, but their certificates name them by
		// node ID, so the standard host name verification cannot work;
		// VerifyConnection checks the certificate instead.
		InsecureSkipVerify: true,
		VerifyConnection:   verify,
	}
	if cert != nil {
		config.Certificates = []tls.Certificate{*cert}
	}
	return config, nil
}

// NewAuthenticatedCredentials returns gRPC credentials for a client of the
// cluster that authenticates with cert, a node or user certificate. If the
// options are contradictory or choose no server verification, every
// handshake fails with an error saying so.
func NewAuthenticatedCredentials(cert tls.Certificate, opts ...CredentialsOption) credentials.TransportCredentials {
	config, err := ClientTLSConfig(&cert, opts...)
	if err != nil {
		config = &tls.Config{
			InsecureSkipVerify: true,
			VerifyConnection: func(tls.ConnectionState) error {
				return fmt.Errorf("rpc client credentials: %w", err)
			},
		}
	}
	return credentials.NewTLS(config)
}

// NewEphemeralCredentials returns gRPC credentials for a client that is not
// (yet) part of the cluster but holds priv: it presents a self-signed
// certificate for priv, which the server sees as
// PeerInfo.Unauthenticated.SelfSignedPublicKey.
func NewEphemeralCredentials(priv ed25519.PrivateKey, opts ...CredentialsOption) (credentials.TransportCredentials, error) {
	cert, err := selfSignedCertificate(priv)
	if err != nil {
		return nil, fmt.Errorf("creating ephemeral certificate: %w", err)
	}
	config, err := ClientTLSConfig(cert, opts...)
	if err != nil {
		return nil, fmt.Errorf("rpc client credentials: %w", err)
	}
	return credentials.NewTLS(config), nil
}

// selfSignedCertificate returns a TLS client certificate for priv, signed by
// priv itself. Like the cluster's certificates it does not expire.
func selfSignedCertificate(priv ed25519.PrivateKey) (*tls.Certificate, error) {
	if len(priv) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("private key is %d bytes, want %d", len(priv), ed25519.PrivateKeySize)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("generating serial number: %w", err)
	}
	template := &x509.Certificate{
		SerialNumber: serial.Add(serial, big.NewInt(1)),
		NotBefore:    time.Unix(0, 0),
		NotAfter:     time.Date(9999, time.December, 31, 23, 59, 59, 0, time.UTC),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, template, template, priv.Public(), priv)
	if err != nil {
		return nil, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: priv, Leaf: leaf}, nil
}

// RetrieveOwnerCertificate escrows the certificate of the cluster owner,
// proving ownership with the owner's private key priv. aaa must be a client
// connected with NewEphemeralCredentials for priv.
func RetrieveOwnerCertificate(ctx context.Context, aaa apb.AAAClient, priv ed25519.PrivateKey) (*tls.Certificate, error) {
	if len(priv) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("owner private key is %d bytes, want %d", len(priv), ed25519.PrivateKeySize)
	}
	// Cancelling ends the stream should the server send more than asked.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	pub := priv.Public().(ed25519.PublicKey)
	stream, err := aaa.Escrow(ctx)
	if err != nil {
		return nil, fmt.Errorf("opening escrow stream: %w", err)
	}
	if err := stream.Send(&apb.EscrowFromClient{
		Parameters: &apb.EscrowFromClient_Parameters{
			RequestedIdentityName: ownerIdentity,
			PublicKey:             pub,
		},
	}); err != nil {
		return nil, fmt.Errorf("sending escrow parameters: %w", err)
	}
	if err := stream.CloseSend(); err != nil {
		return nil, fmt.Errorf("closing escrow stream: %w", err)
	}
	res, err := stream.Recv()
	if err != nil {
		return nil, fmt.Errorf("receiving escrow response: %w", err)
	}
	if len(res.EmittedCertificate) == 0 {
		return nil, fmt.Errorf("escrow emitted no certificate; proofs still needed: %v", res.Needed)
	}
	leaf, err := x509.ParseCertificate(res.EmittedCertificate)
	if err != nil {
		return nil, fmt.Errorf("parsing escrowed certificate: %w", err)
	}
	if !pub.Equal(leaf.PublicKey) {
		return nil, errors.New("escrowed certificate is not for the owner key")
	}
	return &tls.Certificate{
		Certificate: [][]byte{res.EmittedCertificate},
		PrivateKey:  priv,
		Leaf:        leaf,
	}, nil
}
