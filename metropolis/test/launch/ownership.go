package launch

import (
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"strconv"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"metropolis.dev/metropolis/node"
	ipb "metropolis.dev/metropolis/node/core/curator/proto/api"
	"metropolis.dev/metropolis/node/core/identity"
	"metropolis.dev/metropolis/node/core/rpc"
	apb "metropolis.dev/metropolis/proto/api"
)

// takeOwnership fetches the cluster CA from node 0 and escrows the owner
// certificate for ownerKey from its curator, retrying while node 0 is still
// coming up. The CA is trusted on first use: the launcher started the only
// node there is, on a network nobody else is on.
func (c *Cluster) takeOwnership(ctx context.Context, ownerKey ed25519.PrivateKey) error {
	endpoint := net.JoinHostPort(c.NodeAddress(0).String(), strconv.Itoa(node.CuratorServicePort))
	insecure, err := rpc.ClientTLSConfig(nil, rpc.WantInsecure())
	if err != nil {
		return err
	}
	caConn, err := c.dialEndpoint(endpoint, credentials.NewTLS(insecure))
	if err != nil {
		return err
	}
	defer caConn.Close()
	var ca *x509.Certificate
	err = c.poll(ctx, "node 0's curator serves the cluster CA", bootstrapTimeout, c.machines[:1], func(ctx context.Context) error {
		res, err := ipb.NewCuratorLocalClient(caConn).GetCACertificate(ctx, &ipb.GetCACertificateRequest{})
		if err := retryable(err); err != nil {
			return err
		}
		ca, err = x509.ParseCertificate(res.IdentityCaCertificate)
		if err != nil {
			return permanent(fmt.Errorf("parsing the CA certificate node 0 sent: %w", err))
		}
		return nil
	})
	if err != nil {
		return err
	}

	creds, err := rpc.NewEphemeralCredentials(ownerKey, rpc.WantRemoteCluster(ca))
	if err != nil {
		return err
	}
	aaaConn, err := c.dialEndpoint(endpoint, creds)
	if err != nil {
		return err
	}
	defer aaaConn.Close()
	var owner *tls.Certificate
	err = c.poll(ctx, "node 0's curator issues the owner certificate", bootstrapTimeout, c.machines[:1], func(ctx context.Context) error {
		var err error
		owner, err = rpc.RetrieveOwnerCertificate(ctx, apb.NewAAAClient(aaaConn), ownerKey)
		return retryable(err)
	})
	if err != nil {
		return err
	}
	if _, err := identity.VerifyUserInCluster(owner.Leaf, ca); err != nil {
		return fmt.Errorf("the cluster issued an unusable owner certificate: %w", err)
	}
	c.CA, c.Owner = ca, *owner
	return nil
}

// dialEndpoint connects to the curator at endpoint (host:port) alone,
// through the switch.
func (c *Cluster) dialEndpoint(endpoint string, creds credentials.TransportCredentials) (*grpc.ClientConn, error) {
	cc, err := grpc.NewClient("passthrough:///"+endpoint,
		grpc.WithTransportCredentials(creds),
		grpc.WithContextDialer(c.dial),
	)
	if err != nil {
		return nil, fmt.Errorf("connecting to %s: %w", endpoint, err)
	}
	return cc, nil
}

// retryable returns nil for nil, err if it is an error worth retrying while
// a node comes up (it cannot be reached yet, or its curator is not the
// leader yet), and err marked permanent otherwise.
func retryable(err error) error {
	if err == nil {
		return nil
	}
	switch status.Code(err) {
	case codes.Unavailable, codes.DeadlineExceeded:
		return err
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return permanent(err)
}
