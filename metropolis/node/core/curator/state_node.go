package curator

import (
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/protobuf/proto"

	"metropolis.dev/metropolis/node"
	ipb "metropolis.dev/metropolis/node/core/curator/proto/api"
	ppb "metropolis.dev/metropolis/node/core/curator/proto/private"
	"metropolis.dev/metropolis/node/core/identity"
	cpb "metropolis.dev/metropolis/proto/common"
)

// The curator's etcd schema, relative to its namespace. Node records and the
// join key index are written together, so they always agree.
const (
	// nodePrefix holds one ppb.Node per node, at nodePrefix + node ID.
	nodePrefix = "/nodes/"
	// joinKeyPrefix maps hex(join public key) to the node ID, so that a
	// rejoining node is found by the key it authenticates with.
	joinKeyPrefix = "/join_keys/"
)

func nodeKey(id string) string {
	return nodePrefix + id
}

func joinKeyKey(joinKey []byte) string {
	return joinKeyPrefix + hex.EncodeToString(joinKey)
}

// errNodeNotFound is returned by nodeLoad for nodes that do not exist.
var errNodeNotFound = errors.New("node not found")

// nodeIDPrefix starts every node ID; see identity.NodeID.
const nodeIDPrefix = "metropolis-"

// validateNodeID checks that id is shaped like a node ID, so that malformed
// IDs are refused before they reach etcd keys.
func validateNodeID(id string) error {
	if id == "" {
		return errors.New("node ID is empty")
	}
	suffix, ok := strings.CutPrefix(id, nodeIDPrefix)
	if !ok || len(suffix) != 32 {
		return fmt.Errorf("node ID %.80q is not %q followed by 32 hex digits", id, nodeIDPrefix)
	}
	for _, c := range suffix {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return fmt.Errorf("node ID %q is not %q followed by 32 hex digits", id, nodeIDPrefix)
		}
	}
	return nil
}

// nodeIDOf returns the ID of a stored node.
func nodeIDOf(n *ppb.Node) string {
	return identity.NodeID(ed25519.PublicKey(n.PublicKey))
}

// nodeLoad reads the node id from etcd.
func nodeLoad(ctx context.Context, kv clientv3.KV, id string) (*ppb.Node, error) {
	res, err := kv.Get(ctx, nodeKey(id))
	if err != nil {
		return nil, fmt.Errorf("reading node: %w", err)
	}
	if len(res.Kvs) == 0 {
		return nil, errNodeNotFound
	}
	return nodeUnmarshal(res.Kvs[0].Value)
}

func nodeUnmarshal(data []byte) (*ppb.Node, error) {
	var n ppb.Node
	if err := proto.Unmarshal(data, &n); err != nil {
		return nil, fmt.Errorf("decoding node: %w", err)
	}
	if len(n.PublicKey) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("stored node has a %d-byte public key", len(n.PublicKey))
	}
	return &n, nil
}

// nodePutOps returns the etcd operations storing n, keeping the join key
// index in step.
func nodePutOps(n *ppb.Node) ([]clientv3.Op, error) {
	data, err := proto.Marshal(n)
	if err != nil {
		return nil, fmt.Errorf("encoding node: %w", err)
	}
	id := nodeIDOf(n)
	ops := []clientv3.Op{clientv3.OpPut(nodeKey(id), string(data))}
	if len(n.JoinKey) != 0 {
		ops = append(ops, clientv3.OpPut(joinKeyKey(n.JoinKey), id))
	}
	return ops, nil
}

// nodeDeleteOps returns the etcd operations removing n and its join key.
func nodeDeleteOps(n *ppb.Node) []clientv3.Op {
	ops := []clientv3.Op{clientv3.OpDelete(nodeKey(nodeIDOf(n)))}
	if len(n.JoinKey) != 0 {
		ops = append(ops, clientv3.OpDelete(joinKeyKey(n.JoinKey)))
	}
	return ops
}

// hasRoles reports whether n holds any role.
func hasRoles(n *ppb.Node) bool {
	r := n.GetRoles()
	return r.GetConsensusMember() != nil || r.GetKubernetesController() != nil || r.GetKubernetesWorker() != nil
}

// roleNames lists the roles n holds, for messages.
func roleNames(n *ppb.Node) []string {
	var names []string
	r := n.GetRoles()
	if r.GetConsensusMember() != nil {
		names = append(names, "ConsensusMember")
	}
	if r.GetKubernetesController() != nil {
		names = append(names, "KubernetesController")
	}
	if r.GetKubernetesWorker() != nil {
		names = append(names, "KubernetesWorker")
	}
	return names
}

// curatorNode is n as the Curator API shows it to nodes: with full roles,
// including consensus member credentials.
func curatorNode(n *ppb.Node) *ipb.Node {
	return &ipb.Node{
		Id:         nodeIDOf(n),
		Roles:      n.Roles,
		Status:     n.Status,
		Clusternet: n.Clusternet,
		State:      n.FsmState,
		Labels:     sortedLabels(n.Labels),
	}
}

// presenceOnlyRoles returns roles without the consensus member credentials,
// which only the node itself needs.
func presenceOnlyRoles(r *cpb.NodeRoles) *cpb.NodeRoles {
	res := &cpb.NodeRoles{}
	if r.GetConsensusMember() != nil {
		res.ConsensusMember = &cpb.NodeRoles_ConsensusMember{}
	}
	if r.GetKubernetesController() != nil {
		res.KubernetesController = &cpb.NodeRoles_KubernetesController{}
	}
	if r.GetKubernetesWorker() != nil {
		res.KubernetesWorker = &cpb.NodeRoles_KubernetesWorker{}
	}
	return res
}

func sortedLabels(l *cpb.NodeLabels) *cpb.NodeLabels {
	return node.LabelsFromProto(l).Proto()
}
