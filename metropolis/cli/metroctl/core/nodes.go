package core

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"metropolis.dev/metropolis/node"
	apb "metropolis.dev/metropolis/proto/api"
	cpb "metropolis.dev/metropolis/proto/common"
)

// ErrNodeNotFound is wrapped by the errors of GetNode for nodes the cluster
// does not know.
var ErrNodeNotFound = errors.New("node not found")

// GetNodes returns the nodes of the cluster that match filter, a CEL
// expression over `node` (see Management.GetNodes); empty matches all.
func GetNodes(ctx context.Context, mgmt apb.ManagementClient, filter string) ([]*apb.Node, error) {
	stream, err := mgmt.GetNodes(ctx, &apb.GetNodesRequest{Filter: filter})
	if err != nil {
		return nil, fmt.Errorf("listing nodes: %w", err)
	}
	var nodes []*apb.Node
	for {
		n, err := stream.Recv()
		if err == io.EOF {
			return nodes, nil
		}
		if err != nil {
			return nil, fmt.Errorf("listing nodes: %w", err)
		}
		nodes = append(nodes, n)
	}
}

// GetNode returns the node with ID id. The error wraps ErrNodeNotFound if
// there is none.
func GetNode(ctx context.Context, mgmt apb.ManagementClient, id string) (*apb.Node, error) {
	// strconv.Quote escapes exactly as a CEL string literal does.
	nodes, err := GetNodes(ctx, mgmt, "node.id == "+strconv.Quote(id))
	if err != nil {
		return nil, err
	}
	if len(nodes) == 0 {
		return nil, fmt.Errorf("%w: %s", ErrNodeNotFound, id)
	}
	return nodes[0], nil
}

// Role is a role the cluster gives to nodes.
type Role int

const (
	RoleConsensusMember Role = iota
	RoleKubernetesController
	RoleKubernetesWorker
)

var roleNames = []struct {
	role        Role
	name, short string
}{
	{RoleConsensusMember, "ConsensusMember", "cm"},
	{RoleKubernetesController, "KubernetesController", "kc"},
	{RoleKubernetesWorker, "KubernetesWorker", "kw"},
}

// ParseRole parses a role by its name (KubernetesWorker) or abbreviation
// (kw), in any case.
func ParseRole(s string) (Role, error) {
	for _, r := range roleNames {
		if strings.EqualFold(s, r.name) || strings.EqualFold(s, r.short) {
			return r.role, nil
		}
	}
	var names []string
	for _, r := range roleNames {
		names = append(names, fmt.Sprintf("%s (%s)", r.name, r.short))
	}
	return 0, fmt.Errorf("unknown role %q; roles are %s", s, strings.Join(names, ", "))
}

func (r Role) String() string {
	for _, n := range roleNames {
		if n.role == r {
			return n.name
		}
	}
	return fmt.Sprintf("Role(%d)", int(r))
}

// UpdateRequest returns the request that gives the node with ID id the role
// (enable) or takes it away.
func (r Role) UpdateRequest(id string, enable bool) *apb.UpdateNodeRolesRequest {
	req := &apb.UpdateNodeRolesRequest{Node: &apb.UpdateNodeRolesRequest_Id{Id: id}}
	switch r {
	case RoleConsensusMember:
		req.ConsensusMember = &enable
	case RoleKubernetesController:
		req.KubernetesController = &enable
	case RoleKubernetesWorker:
		req.KubernetesWorker = &enable
	}
	return req
}

// RoleNames returns the names of the roles present in roles, sorted.
func RoleNames(roles *cpb.NodeRoles) []string {
	var names []string
	if roles.GetConsensusMember() != nil {
		names = append(names, RoleConsensusMember.String())
	}
	if roles.GetKubernetesController() != nil {
		names = append(names, RoleKubernetesController.String())
	}
	if roles.GetKubernetesWorker() != nil {
		names = append(names, RoleKubernetesWorker.String())
	}
	slices.Sort(names)
	return names
}

// ParseLabels parses labels given as key=value, checking keys and values as
// the cluster does. A key given twice is an error.
func ParseLabels(pairs []string) (*cpb.NodeLabels, error) {
	labels := node.Labels{}
	for _, p := range pairs {
		key, value, ok := strings.Cut(p, "=")
		if !ok {
			return nil, fmt.Errorf("label %q: want key=value", p)
		}
		if err := node.ValidateLabelKey(key); err != nil {
			return nil, err
		}
		if err := node.ValidateLabelValue(value); err != nil {
			return nil, err
		}
		if _, dup := labels[key]; dup {
			return nil, fmt.Errorf("label key %q given twice", key)
		}
		labels[key] = value
	}
	if err := labels.Validate(); err != nil {
		return nil, err
	}
	return labels.Proto(), nil
}
