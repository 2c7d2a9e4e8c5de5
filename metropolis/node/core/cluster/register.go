package cluster

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	ipb "metropolis.dev/metropolis/node/core/curator/proto/api"
	"metropolis.dev/metropolis/node/core/identity"
	"metropolis.dev/metropolis/node/core/rpc"
	apb "metropolis.dev/metropolis/proto/api"
	ppb "metropolis.dev/metropolis/proto/private"
	"metropolis.dev/osbase/supervisor"
)

// register makes a new node a member of an existing cluster: it registers
// with the curator, sets up its data partition as the cluster recommends,
// waits for an operator to approve it, and commits, handing the cluster its
// half of the data partition key in exchange for a node certificate.
func (m *Manager) register(ctx context.Context, p *apb.NodeParameters_ClusterRegister) error {
	ca, err := validateRegister(p)
	if err != nil {
		return fmt.Errorf("node parameters: %w", err)
	}
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return fmt.Errorf("generating node key: %w", err)
	}
	_, joinKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return fmt.Errorf("generating join key: %w", err)
	}
	creds, err := rpc.NewEphemeralCredentials(key, rpc.WantRemoteCluster(ca))
	if err != nil {
		return err
	}
	conn, r, err := dialCluster(ctx, p.ClusterDirectory, creds)
	if err != nil {
		return err
	}
	defer r.Close()
	defer conn.Close()
	cur := ipb.NewCuratorClient(conn)

	pub := key.Public().(ed25519.PublicKey)
	log := supervisor.Logger(ctx)
	log.Infof("Registering into the cluster as node %s, public key %x. Compare the key before approving the node.", identity.NodeID(pub), []byte(pub))
	var res *ipb.RegisterNodeResponse
	err = retry(ctx, time.Second, func() (err error) {
		res, err = cur.RegisterNode(ctx, &ipb.RegisterNodeRequest{
			RegisterTicket: p.RegisterTicket,
			JoinKey:        joinKey.Public().(ed25519.PublicKey),
			HaveLocalTpm:   m.config.TPM != nil,
			Labels:         p.Labels,
		})
		return err
	}, codes.Unavailable)
	if err != nil {
		return fmt.Errorf("registering: %w", err)
	}
	security := res.RecommendedNodeStorageSecurity
	t := m.sealingTPM(res.TpmUsage)
	log.Infof("Registered. Setting up the data partition (%s, TPM usage %s).", security, res.TpmUsage)
	cuk, err := m.config.Data.MountNew(ctx, security, t)
	if err != nil {
		return fmt.Errorf("setting up the data partition: %w", err)
	}

	log.Infof("Waiting for the node to be approved.")
	var commit *ipb.CommitNodeResponse
	err = retry(ctx, m.config.CommitInterval, func() (err error) {
		commit, err = cur.CommitNode(ctx, &ipb.CommitNodeRequest{ClusterUnlockKey: cuk, StorageSecurity: security})
		return err
	}, codes.Unavailable, codes.PermissionDenied)
	if err != nil {
		return fmt.Errorf("committing: %w", err)
	}
	nodeCreds, err := identity.NewNodeCredentials(key, commit.NodeCertificate, commit.CaCertificate)
	if err != nil {
		return fmt.Errorf("committing: %w", err)
	}
	dir := &m.config.Storage.Data.Node.Credentials
	if err := dir.MkdirAll(0o700); err != nil {
		return fmt.Errorf("saving node credentials: %w", err)
	}
	if err := nodeCreds.Save(dir.FullPath()); err != nil {
		return err
	}
	if err := m.writeDirectory(p.ClusterDirectory); err != nil {
		return err
	}
	if err := m.reseal(t, func(sc *ppb.SealedConfiguration) {
		sc.JoinKey = joinKey
		sc.ClusterCa = ca.Raw
	}); err != nil {
		return err
	}
	log.Infof("Approved and committed as node %s.", nodeCreds.ID())
	m.config.RoleServer.ProvideRegisterData(nodeCreds, p.ClusterDirectory)
	return nil
}

// validateRegister checks the register parameters and returns the cluster
// CA.
func validateRegister(p *apb.NodeParameters_ClusterRegister) (*x509.Certificate, error) {
	ca, err := x509.ParseCertificate(p.CaCertificate)
	if err != nil {
		return nil, fmt.Errorf("ca_certificate: %w", err)
	}
	if _, ok := ca.PublicKey.(ed25519.PublicKey); !ok || !ca.IsCA || ca.KeyUsage&x509.KeyUsageCertSign == 0 {
		return nil, errors.New("ca_certificate is not an ed25519 CA certificate for signing certificates")
	}
	if len(p.RegisterTicket) == 0 {
		return nil, errors.New("register_ticket is empty")
	}
	if len(p.ClusterDirectory.GetNodes()) == 0 {
		return nil, errors.New("cluster_directory lists no nodes")
	}
	for _, n := range p.ClusterDirectory.Nodes {
		if len(n.Addresses) == 0 {
			return nil, fmt.Errorf("cluster_directory: node %q has no addresses", n.Id)
		}
		for _, a := range n.Addresses {
			if _, err := netip.ParseAddr(a.Host); err != nil {
				return nil, fmt.Errorf("cluster_directory: node %q: %w", n.Id, err)
			}
		}
	}
	return ca, nil
}

// retry calls f every interval until it returns an error whose code is
// not among transient, and returns that.
func retry(ctx context.Context, interval time.Duration, f func() error, transient ...codes.Code) error {
	logged := false
	for {
		err := f()
		if err == nil || !isCode(err, transient) {
			return err
		}
		if !logged {
			supervisor.Logger(ctx).Infof("Retrying every %v: %v", interval, err)
			logged = true
		}
		select {
		case <-time.After(interval):
		case <-ctx.Done():
			return fmt.Errorf("%w (last error: %w)", ctx.Err(), err)
		}
	}
}

func isCode(err error, codes []codes.Code) bool {
	c := status.Code(err)
	for _, want := range codes {
		if c == want {
			return true
		}
	}
	return false
}
