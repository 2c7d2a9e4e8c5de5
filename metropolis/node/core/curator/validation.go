package curator

import (
	"bytes"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"metropolis.dev/metropolis/node"
	ipb "metropolis.dev/metropolis/node/core/curator/proto/api"
	ppb "metropolis.dev/metropolis/node/core/curator/proto/private"
	"metropolis.dev/metropolis/node/core/identity"
	cpb "metropolis.dev/metropolis/proto/common"
)

// Limits on what callers may send, beyond what the fields' meaning implies.
const (
	// maxVersionLength bounds NodeStatus.version.release.
	maxVersionLength = 256
	// bootIDSize is the size of a kernel boot ID.
	bootIDSize = 16
	// maxClusternetPrefixes bounds the prefixes one node routes.
	maxClusternetPrefixes = 256
	// maxWireguardKeyLength bounds the base64 WireGuard key before decoding.
	maxWireguardKeyLength = 64
	// clusterUnlockKeySize is the size of a cluster unlock key.
	clusterUnlockKeySize = 32
)

// invalidArgument returns an InvalidArgument status error.
func invalidArgument(format string, args ...any) error {
	return status.Errorf(codes.InvalidArgument, format, args...)
}

// validateKey checks that key is an ed25519 public key.
func validateKey(name string, key []byte) error {
	if len(key) == 0 {
		return fmt.Errorf("%s missing", name)
	}
	if len(key) != ed25519.PublicKeySize {
		return fmt.Errorf("%s is %d bytes, want %d", name, len(key), ed25519.PublicKeySize)
	}
	return nil
}

// validateLabels checks labels as a whole: every pair valid, no key twice,
// at most node.MaxLabelsPerNode.
func validateLabels(labels *cpb.NodeLabels) error {
	pairs := labels.GetPairs()
	if len(pairs) > node.MaxLabelsPerNode {
		return fmt.Errorf("%d labels, at most %d are allowed", len(pairs), node.MaxLabelsPerNode)
	}
	seen := make(map[string]bool, len(pairs))
	for _, p := range pairs {
		if p == nil {
			return errors.New("empty label pair")
		}
		if err := node.ValidateLabelKey(p.Key); err != nil {
			return err
		}
		if err := node.ValidateLabelValue(p.Value); err != nil {
			return err
		}
		if seen[p.Key] {
			return fmt.Errorf("label key %q given twice", p.Key)
		}
		seen[p.Key] = true
	}
	return nil
}

// validateRegisterNodeRequest checks everything in a RegisterNode request
// that does not depend on cluster state.
func validateRegisterNodeRequest(req *ipb.RegisterNodeRequest) error {
	switch {
	case len(req.RegisterTicket) == 0:
		return errors.New("register_ticket missing")
	case len(req.RegisterTicket) > maxRegisterTicketSize:
		return fmt.Errorf("register_ticket is %d bytes, at most %d are allowed", len(req.RegisterTicket), maxRegisterTicketSize)
	}
	if err := validateKey("join_key", req.JoinKey); err != nil {
		return err
	}
	if err := validateLabels(req.Labels); err != nil {
		return fmt.Errorf("labels: %w", err)
	}
	return nil
}

// validateCommitNodeRequest checks everything in a CommitNode request that
// does not depend on cluster state.
func validateCommitNodeRequest(req *ipb.CommitNodeRequest) error {
	ss := req.StorageSecurity
	if _, ok := cpb.NodeStorageSecurity_name[int32(ss)]; !ok || ss == cpb.NodeStorageSecurity_NODE_STORAGE_SECURITY_INVALID {
		return fmt.Errorf("storage_security %d is not a valid storage security", ss)
	}
	cuk := req.ClusterUnlockKey
	if ss == cpb.NodeStorageSecurity_NODE_STORAGE_SECURITY_INSECURE {
		if len(cuk) != 0 {
			return errors.New("cluster_unlock_key must be empty for insecure storage")
		}
		return nil
	}
	if len(cuk) != clusterUnlockKeySize {
		return fmt.Errorf("cluster_unlock_key is %d bytes, want %d", len(cuk), clusterUnlockKeySize)
	}
	return nil
}

// validateNodeStatus checks a status reported by a node.
func validateNodeStatus(st *cpb.NodeStatus) error {
	if st == nil {
		return errors.New("status missing")
	}
	if st.ExternalAddress == "" {
		return errors.New("status.external_address missing")
	}
	addr, err := netip.ParseAddr(st.ExternalAddress)
	if err != nil {
		return fmt.Errorf("status.external_address: %w", err)
	}
	if addr.IsUnspecified() || addr.IsMulticast() || addr.Zone() != "" || addr.Is4In6() {
		return fmt.Errorf("status.external_address %s is not a plain unicast address", addr)
	}
	if addr.String() != st.ExternalAddress {
		return fmt.Errorf("status.external_address %q is not in canonical form %q", st.ExternalAddress, addr)
	}
	if rc := st.RunningCurator; rc != nil && (rc.Port <= 0 || rc.Port > 65535) {
		return fmt.Errorf("status.running_curator.port %d is not a valid port", rc.Port)
	}
	if len(st.GetVersion().GetRelease()) > maxVersionLength {
		return fmt.Errorf("status.version.release is longer than %d bytes", maxVersionLength)
	}
	if len(st.BootId) != 0 && len(st.BootId) != bootIDSize {
		return fmt.Errorf("status.boot_id is %d bytes, want %d", len(st.BootId), bootIDSize)
	}
	return nil
}

// validateClusternet checks a node's cluster networking and returns it in
// canonical form.
func validateClusternet(cn *cpb.NodeClusterNetworking) (*cpb.NodeClusterNetworking, error) {
	if cn == nil {
		return nil, errors.New("clusternet missing")
	}
	if cn.WireguardPubkey == "" {
		return nil, errors.New("clusternet.wireguard_pubkey missing")
	}
	if cn.MeshAddress != "" {
		return nil, errors.New("clusternet.mesh_address is assigned by the curator, not set by nodes")
	}
	if _, err := decodeWireguardKey(cn.WireguardPubkey); err != nil {
		return nil, err
	}
	if len(cn.Prefixes) > maxClusternetPrefixes {
		return nil, fmt.Errorf("%d prefixes, at most %d are allowed", len(cn.Prefixes), maxClusternetPrefixes)
	}
	res := &cpb.NodeClusterNetworking{WireguardPubkey: cn.WireguardPubkey}
	for _, p := range cn.Prefixes {
		prefix, err := netip.ParsePrefix(p.GetCidr())
		if err != nil {
			return nil, fmt.Errorf("prefix %q: %w", p.GetCidr(), err)
		}
		if prefix.Masked() != prefix {
			return nil, fmt.Errorf("prefix %s has host bits set; the canonical form is %s", prefix, prefix.Masked())
		}
		res.Prefixes = append(res.Prefixes, &cpb.NodeClusterNetworking_Prefix{Cidr: prefix.String()})
	}
	return res, nil
}

// checkClusternetPrefixes checks that a node with the given external
// address may route the (canonical) prefixes of cn: networks within the
// cluster network but outside the mesh addresses, which only the curator
// assigns, and its own address.
func checkClusternetPrefixes(cn *cpb.NodeClusterNetworking, external netip.Addr) error {
	own := netip.PrefixFrom(external, external.BitLen())
	for _, p := range cn.Prefixes {
		prefix := netip.MustParsePrefix(p.Cidr)
		if prefix == own {
			continue
		}
		if !within(prefix, node.ClusterNetwork) {
			return fmt.Errorf("prefix %s is neither within %s nor the node's own address %s", prefix, node.ClusterNetwork, own)
		}
		if prefix.Overlaps(node.MeshAddresses) {
			return fmt.Errorf("prefix %s overlaps %s, from which the curator assigns mesh addresses", prefix, node.MeshAddresses)
		}
	}
	return nil
}

// clusterPrefixes returns the prefixes within the cluster network that cn
// routes to its node: those it published and its mesh address.
func clusterPrefixes(cn *cpb.NodeClusterNetworking) []netip.Prefix {
	var res []netip.Prefix
	for _, p := range cn.GetPrefixes() {
		if prefix, err := netip.ParsePrefix(p.Cidr); err == nil && within(prefix, node.ClusterNetwork) {
			res = append(res, prefix)
		}
	}
	if addr, err := netip.ParseAddr(cn.GetMeshAddress()); err == nil {
		res = append(res, netip.PrefixFrom(addr, addr.BitLen()))
	}
	return res
}

// within says whether prefix lies entirely inside outer.
func within(prefix, outer netip.Prefix) bool {
	return prefix.Bits() >= outer.Bits() && outer.Contains(prefix.Addr())
}

// decodeWireguardKey decodes a base64 WireGuard public key.
func decodeWireguardKey(key string) ([]byte, error) {
	if len(key) > maxWireguardKeyLength {
		return nil, fmt.Errorf("clusternet.wireguard_pubkey is longer than %d characters", maxWireguardKeyLength)
	}
	raw, err := base64.StdEncoding.DecodeString(key)
	if err != nil || len(raw) != 32 {
		return nil, errors.New("clusternet.wireguard_pubkey is not a base64-encoded 32-byte key")
	}
	return raw, nil
}

// nodeRef is a request's reference to a node: by public key or by ID.
type nodeRef interface {
	GetPubkey() []byte
	GetId() string
}

// resolveNodeRef returns the ID of the node ref names and, if it names one
// by public key, that key, which the stored node must match.
func resolveNodeRef(ref nodeRef) (string, []byte, error) {
	pub, id := ref.GetPubkey(), ref.GetId()
	switch {
	case len(pub) != 0:
		if err := validateKey("pubkey", pub); err != nil {
			return "", nil, invalidArgument("%v", err)
		}
		return identity.NodeID(pub), pub, nil
	case id != "":
		if err := validateNodeID(id); err != nil {
			return "", nil, invalidArgument("id: %v", err)
		}
		return id, nil, nil
	default:
		return "", nil, invalidArgument("node missing: set pubkey or id")
	}
}

// matchesRef reports whether n is the node ref named, after its ID matched.
func matchesRef(n *ppb.Node, pub []byte) bool {
	return pub == nil || bytes.Equal(n.PublicKey, pub)
}

// latestNodeCertificate returns the newest node certificate among those
// issued for n, or nil.
func latestNodeCertificate(n *ppb.Node) []byte {
	for _, der := range slices.Backward(n.IssuedCertificates) {
		cert, err := x509.ParseCertificate(der)
		if err != nil {
			continue
		}
		pub, ok := cert.PublicKey.(ed25519.PublicKey)
		if ok && pub.Equal(ed25519.PublicKey(n.PublicKey)) && slices.Contains(cert.ExtKeyUsage, x509.ExtKeyUsageServerAuth) {
			return der
		}
	}
	return nil
}

// checkClusternetConflicts checks that what a node publishes (cn) takes
// nothing the other nodes hold: their WireGuard keys, or any part of their
// prefixes within the cluster network, which would let the node receive
// traffic meant for them.
func checkClusternetConflicts(cn *cpb.NodeClusterNetworking, others map[string]*cpb.NodeClusterNetworking) error {
	mine := clusterPrefixes(cn)
	for _, id := range slices.Sorted(maps.Keys(others)) {
		other := others[id]
		if other.GetWireguardPubkey() == cn.WireguardPubkey {
			return fmt.Errorf("WireGuard key is already used by node %s", id)
		}
		for _, theirs := range clusterPrefixes(other) {
			for _, p := range mine {
				if p.Overlaps(theirs) {
					return fmt.Errorf("prefix %s overlaps %s of node %s", p, theirs, id)
				}
			}
		}
	}
	return nil
}

// freeMeshAddress returns the lowest address of node.MeshAddresses that
// none of the other nodes holds, skipping the range's network address.
func freeMeshAddress(others map[string]*cpb.NodeClusterNetworking) (netip.Addr, error) {
	taken := make(map[netip.Addr]bool)
	for _, other := range others {
		if addr, err := netip.ParseAddr(other.GetMeshAddress()); err == nil {
			taken[addr] = true
		}
	}
	for addr := node.MeshAddresses.Addr().Next(); node.MeshAddresses.Contains(addr); addr = addr.Next() {
		if !taken[addr] {
			return addr, nil
		}
	}
	return netip.Addr{}, fmt.Errorf("all %s mesh addresses are taken", node.MeshAddresses)
}
