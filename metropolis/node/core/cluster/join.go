package cluster

import (
	"context"
	"crypto/ed25519"
	"crypto/x509"
	"fmt"
	"time"

	"google.golang.org/grpc/codes"

	ipb "metropolis.dev/metropolis/node/core/curator/proto/api"
	"metropolis.dev/metropolis/node/core/identity"
	"metropolis.dev/metropolis/node/core/localstorage/crypt"
	"metropolis.dev/metropolis/node/core/rpc"
	cpb "metropolis.dev/metropolis/proto/common"
	ppb "metropolis.dev/metropolis/proto/private"
	"metropolis.dev/osbase/supervisor"
)

// Backoff of JoinNode attempts. There is no limit to the attempts: a node
// whose cluster is down waits for it to come back.
const (
	joinInitialBackoff = time.Second
	joinMaxBackoff     = 30 * time.Second
)

// join rejoins the cluster after a reboot: it fetches the cluster's half of
// the data partition key with the join key, mounts the data partition and
// reads the node's credentials from it.
func (m *Manager) join(ctx context.Context, sc *ppb.SealedConfiguration, sealedByTPM bool) error {
	log := supervisor.Logger(ctx)
	ca, err := x509.ParseCertificate(sc.ClusterCa)
	if err != nil {
		return fmt.Errorf("sealed configuration: cluster CA: %w", err)
	}
	if len(sc.JoinKey) != ed25519.PrivateKeySize {
		return fmt.Errorf("sealed configuration: join key has %d bytes, want %d", len(sc.JoinKey), ed25519.PrivateKeySize)
	}
	directory, err := m.readDirectory()
	if err != nil {
		return err
	}
	var cuk []byte
	if sc.StorageSecurity != cpb.NodeStorageSecurity_NODE_STORAGE_SECURITY_INSECURE {
		creds, err := rpc.NewEphemeralCredentials(ed25519.PrivateKey(sc.JoinKey), rpc.WantRemoteCluster(ca))
		if err != nil {
			return err
		}
		conn, r, err := dialCluster(ctx, directory, creds)
		if err != nil {
			return err
		}
		defer r.Close()
		defer conn.Close()
		log.Infof("Rejoining the cluster: asking for the cluster unlock key.")
		backoff := joinInitialBackoff
		for {
			res, err := ipb.NewCuratorClient(conn).JoinNode(ctx, &ipb.JoinNodeRequest{UsingSealedConfiguration: sealedByTPM})
			if err == nil {
				cuk = res.ClusterUnlockKey
				break
			}
			if isCode(err, []codes.Code{codes.PermissionDenied, codes.NotFound, codes.FailedPrecondition, codes.InvalidArgument}) {
				return fmt.Errorf("the cluster refuses to let this node rejoin: %w", err)
			}
			log.Warningf("Rejoining failed, retrying in %v: %v", backoff, err)
			select {
			case <-time.After(backoff):
			case <-ctx.Done():
				return ctx.Err()
			}
			backoff = min(2*backoff, joinMaxBackoff)
		}
		if len(cuk) != crypt.KeySize {
			return fmt.Errorf("the cluster returned a cluster unlock key of %d bytes, want %d", len(cuk), crypt.KeySize)
		}
	}
	if err := m.config.Data.MountExisting(ctx, sc, cuk); err != nil {
		return fmt.Errorf("mounting the data partition: %w", err)
	}
	creds, err := identity.ReadNodeCredentials(m.config.Storage.Data.Node.Credentials.FullPath())
	if err != nil {
		return err
	}
	log.Infof("Joined the cluster as node %s.", creds.ID())
	m.config.RoleServer.ProvideJoinData(creds, directory)
	return nil
}
