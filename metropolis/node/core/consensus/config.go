package consensus

import (
	"crypto/ed25519"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"strconv"

	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"

	"metropolis.dev/metropolis/node"
)

// clusterToken is etcd's initial cluster token. It keeps members of
// different clusters that happen to share peer URLs from forming one cluster;
// every Metropolis cluster has its own peer CA, which already does that, so a
// constant suffices.
const clusterToken = "METROPOLIS"

// Config describes the local consensus member.
type Config struct {
	// NodeID is the node's ID, used as the etcd member name.
	NodeID string
	// NodePrivateKey is the node's private key. The member's peer
	// certificate is issued for its public key.
	NodePrivateKey ed25519.PrivateKey
	// DataDir is persistent (and encrypted) storage for the etcd data, the
	// peer PKI files and the peer CRL.
	DataDir string
	// EphemeralDir holds the client unix socket.
	EphemeralDir string
	// ListenHost is the IP address to listen on for peers and to advertise
	// in the member's peer URL, eg. "127.0.0.2".
	ListenHost string
	// Port is the peer port. Zero means node.ConsensusPort.
	Port int
	// JoinCluster, if set, makes a member without data join an existing
	// cluster. If it is nil and DataDir holds no member, a new cluster is
	// bootstrapped. A member that has data always starts from it.
	JoinCluster *JoinCluster
}

// JoinCluster is what a new member needs to join a running cluster. AddNode
// on an existing member returns it.
type JoinCluster struct {
	// CACertificate is the cluster's peer CA.
	CACertificate *x509.Certificate
	// NodeCertificate is the joining node's peer certificate.
	NodeCertificate *x509.Certificate
	// InitialCRL is the DER-encoded peer CRL at the time of joining. The
	// member keeps it up to date from etcd once it runs.
	InitialCRL []byte
	// ExistingNodes are the other members at the time of joining, in no
	// particular order. The joining member asks them for the current
	// membership, so they need not be complete, only reachable.
	ExistingNodes []ExistingNode
}

// ExistingNode is a member of a cluster.
type ExistingNode struct {
	// Name is the node ID of the member.
	Name string
	// URL is the member's peer URL.
	URL string
}

func (c *Config) validate() error {
	if err := validateNodeID(c.NodeID); err != nil {
		return err
	}
	switch {
	case len(c.NodePrivateKey) != ed25519.PrivateKeySize:
		return fmt.Errorf("NodePrivateKey has %d bytes, want an ed25519 private key of %d bytes", len(c.NodePrivateKey), ed25519.PrivateKeySize)
	case c.DataDir == "":
		return errors.New("DataDir is empty")
	case c.EphemeralDir == "":
		return errors.New("EphemeralDir is empty")
	case net.ParseIP(c.ListenHost) == nil:
		return fmt.Errorf("ListenHost %q is not an IP address", c.ListenHost)
	case c.Port < 0 || c.Port > 65535:
		return fmt.Errorf("peer port %d is out of range", c.Port)
	}
	if j := c.JoinCluster; j != nil {
		switch {
		case j.CACertificate == nil:
			return errors.New("JoinCluster has no CACertificate")
		case j.NodeCertificate == nil:
			return errors.New("JoinCluster has no NodeCertificate")
		case len(j.InitialCRL) == 0:
			return errors.New("JoinCluster has no InitialCRL")
		}
	}
	return nil
}

// validateNodeID accepts node IDs that can be part of a certificate name in
// the peer PKI and of an etcd key.
func validateNodeID(id string) error {
	if id == "" {
		return errors.New("node ID is empty")
	}
	for _, r := range id {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_', r == '.':
		default:
			return fmt.Errorf("node ID %q contains %q; only letters, digits and - _ . are allowed", id, r)
		}
	}
	return nil
}

func (c *Config) publicKey() ed25519.PublicKey {
	return c.NodePrivateKey.Public().(ed25519.PublicKey)
}

func (c *Config) port() int {
	if c.Port == 0 {
		return node.ConsensusPort
	}
	return c.Port
}

// peerURL is the URL under which the other members reach this one.
func (c *Config) peerURL() *url.URL {
	return &url.URL{Scheme: "https", Host: net.JoinHostPort(c.ListenHost, strconv.Itoa(c.port()))}
}

// files are the places on disk the member keeps its state in.
type files struct {
	// etcd is etcd's own data directory.
	etcd string
	// caCert, peerCert and peerKey are the PEM-encoded peer CA certificate,
	// the member's peer certificate and its private key.
	caCert, peerCert, peerKey string
	// crl is the PEM-encoded peer CRL, which etcd reads on every incoming
	// peer connection.
	crl string
	// socket is the client unix socket.
	socket string
}

// wal is where etcd keeps its write-ahead log, which exists once the member
// has been set up.
func (f *files) wal() string {
	return filepath.Join(f.etcd, "member", "wal")
}

func (c *Config) files() files {
	pki := filepath.Join(c.DataDir, "peer_pki")
	return files{
		etcd:     filepath.Join(c.DataDir, "data"),
		caCert:   filepath.Join(pki, "ca.pem"),
		peerCert: filepath.Join(pki, "cert.pem"),
		peerKey:  filepath.Join(pki, "cert-key.pem"),
		crl:      filepath.Join(c.DataDir, "peer_crl"),
		socket:   filepath.Join(c.EphemeralDir, "client.sock"),
	}
}

// etcdConfig returns the configuration of the embedded etcd server. Without
// peers, the server does not listen for peer traffic at all, which is how a
// new cluster is started before its peer PKI exists.
func (c *Config) etcdConfig(f files, logger *zap.Logger, peers bool) *embed.Config {
	cfg := embed.NewConfig()
	cfg.Name = c.NodeID
	cfg.Dir = f.etcd
	cfg.InitialClusterToken = clusterToken
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(logger)
	// Refuse membership changes that would put the quorum at risk. This is
	// etcd's default, set here because RemoveNode relies on it.
	cfg.StrictReconfigCheck = true
	// etcd keeps every revision of every key until it is compacted. Keep an
	// hour of history, plenty for watchers to resume after a hiccup, so
	// that the database does not grow without bound.
	cfg.AutoCompactionMode = embed.CompactorModePeriodic
	cfg.AutoCompactionRetention = "1h"

	socket := url.URL{Scheme: "unix", Path: f.socket}
	cfg.ListenClientUrls = []url.URL{socket}
	// etcd insists on advertising client URLs of the form host:port. Clients
	// only ever use the local socket, which no other machine can reach, so
	// the member advertises a unix URL that names no socket at all instead
	// of one that might be mistaken for a reachable endpoint.
	cfg.AdvertiseClientUrls = []url.URL{{Scheme: "unix", Host: "localhost:0"}}

	cfg.AdvertisePeerUrls = []url.URL{*c.peerURL()}
	cfg.ListenPeerUrls = nil
	if peers {
		cfg.ListenPeerUrls = []url.URL{*c.peerURL()}
		cfg.PeerTLSInfo.CertFile = f.peerCert
		cfg.PeerTLSInfo.KeyFile = f.peerKey
		cfg.PeerTLSInfo.TrustedCAFile = f.caCert
		cfg.PeerTLSInfo.ClientCertAuth = true
		cfg.PeerTLSInfo.CRLFile = f.crl
		// Peers are authenticated by a certificate of the cluster's peer CA
		// that is not revoked. etcd would additionally require the address
		// a peer connects from to be in its certificate, but a node with
		// several addresses connects from whichever the kernel picks, not
		// necessarily the one it advertises.
		cfg.PeerTLSInfo.SkipClientSANVerify = true
	}
	return cfg
}
