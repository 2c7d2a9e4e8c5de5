package curator

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"metropolis.dev/metropolis/node"
	"metropolis.dev/metropolis/node/core/consensus"
	ppb "metropolis.dev/metropolis/node/core/curator/proto/private"
	apb "metropolis.dev/metropolis/proto/api"
	cpb "metropolis.dev/metropolis/proto/common"
)

// managementServer implements the Management API on the leader: what
// operators call to manage the cluster.
type managementServer struct {
	apb.UnimplementedManagementServer
	*leadership
}

// Request size limits of the Management API.
const (
	// maxClusterDirectoryNodes bounds the directory in GetClusterInfo: it is
	// meant to find the cluster, not to list it.
	maxClusterDirectoryNodes = 15
	// maxLabelChanges bounds the upserts and deletes of one
	// UpdateNodeLabels call each.
	maxLabelChanges = node.MaxLabelsPerNode
	// maxUpdateMaskPaths bounds ConfigureCluster's update mask.
	maxUpdateMaskPaths = 16
)

func (s *managementServer) GetRegisterTicket(ctx context.Context, _ *apb.GetRegisterTicketRequest) (*apb.GetRegisterTicketResponse, error) {
	s.muRegisterTicket.Lock()
	defer s.muRegisterTicket.Unlock()
	ticket, err := registerTicketLoad(ctx, s.etcd)
	if err != nil {
		return nil, rpcError(ctx, "loading register ticket", err)
	}
	if ticket == nil {
		ticket = make([]byte, registerTicketSize)
		if _, err := rand.Read(ticket); err != nil {
			return nil, rpcError(ctx, "generating register ticket", err)
		}
		data, err := proto.Marshal(&ppb.RegisterTicket{Opaque: ticket})
		if err != nil {
			return nil, rpcError(ctx, "encoding register ticket", err)
		}
		if _, err := s.txnAsLeader(ctx, clientv3.OpPut(registerTicketKey, string(data))); err != nil {
			return nil, rpcError(ctx, "storing register ticket", err)
		}
	}
	return &apb.GetRegisterTicketResponse{Ticket: ticket}, nil
}

func (s *managementServer) GetClusterInfo(ctx context.Context, _ *apb.GetClusterInfoRequest) (*apb.GetClusterInfoResponse, error) {
	nodes, _, err := s.nodes.all(ctx)
	if err != nil {
		return nil, rpcError(ctx, "listing nodes", err)
	}
	var directory []*ppb.Node
	for _, e := range nodes {
		if e.node.FsmState == cpb.NodeState_NODE_STATE_UP && e.node.Status.GetExternalAddress() != "" {
			directory = append(directory, e.node)
		}
	}
	slices.SortFunc(directory, func(a, b *ppb.Node) int { return bytes.Compare(a.PublicKey, b.PublicKey) })
	res := &apb.GetClusterInfoResponse{
		ClusterDirectory: &cpb.ClusterDirectory{},
		CaCertificate:    s.credentials.ClusterCA().Raw,
	}
	for _, n := range directory[:min(len(directory), maxClusterDirectoryNodes)] {
		res.ClusterDirectory.Nodes = append(res.ClusterDirectory.Nodes, &cpb.ClusterDirectory_Node{
			Id:        nodeIDOf(n),
			Addresses: []*cpb.ClusterDirectory_Node_Address{{Host: n.Status.ExternalAddress}},
		})
	}
	if res.ClusterConfiguration, err = clusterConfigurationLoad(ctx, s.etcd); err != nil {
		return nil, rpcError(ctx, "loading cluster configuration", err)
	}
	return res, nil
}

// managementNode is n as the Management API shows it at now.
func (l *leadership) managementNode(n *ppb.Node, now time.Time) *apb.Node {
	id := nodeIDOf(n)
	last, _ := l.heartbeats.get(id)
	health, sinceHeartbeat := nodeHealth(n.FsmState, last, l.since, now)
	return &apb.Node{
		Pubkey:             n.PublicKey,
		Id:                 id,
		State:              n.FsmState,
		Status:             n.Status,
		Roles:              presenceOnlyRoles(n.Roles),
		Health:             health,
		TimeSinceHeartbeat: durationpb.New(sinceHeartbeat),
		TpmUsage:           n.TpmUsage,
		Labels:             sortedLabels(n.Labels),
		Clusternet:         n.Clusternet,
	}
}

func (s *managementServer) GetNodes(req *apb.GetNodesRequest, srv grpc.ServerStreamingServer[apb.Node]) error {
	ctx := srv.Context()
	filter, err := compileNodeFilter(req.Filter)
	if err != nil {
		return invalidArgument("%v", err)
	}
	nodes, _, err := s.nodes.all(ctx)
	if err != nil {
		return rpcError(ctx, "listing nodes", err)
	}
	now := time.Now()
	for _, e := range nodes {
		n := s.managementNode(e.node, now)
		ok, err := filter.match(ctx, n)
		if errors.Is(err, errFilterInvalid) {
			return invalidArgument("%v", err)
		}
		if err != nil {
			return rpcError(ctx, "filtering nodes", err)
		}
		if !ok {
			continue
		}
		if err := srv.Send(n); err != nil {
			return err
		}
	}
	return nil
}

func (s *managementServer) ApproveNode(ctx context.Context, req *apb.ApproveNodeRequest) (*apb.ApproveNodeResponse, error) {
	id, pub, err := resolveNodeRef(pubkeyRef{req.Pubkey})
	if err != nil {
		return nil, err
	}
	s.muNodes.Lock()
	defer s.muNodes.Unlock()
	n, err := s.loadNode(ctx, id, pub)
	if err != nil {
		return nil, err
	}
	switch n.FsmState {
	case cpb.NodeState_NODE_STATE_NEW:
	case cpb.NodeState_NODE_STATE_STANDBY, cpb.NodeState_NODE_STATE_UP:
		return &apb.ApproveNodeResponse{}, nil
	default:
		return nil, status.Errorf(codes.FailedPrecondition, "node %s is %s and cannot be approved", id, n.FsmState)
	}
	n.FsmState = cpb.NodeState_NODE_STATE_STANDBY
	if err := s.saveNode(ctx, n); err != nil {
		return nil, err
	}
	return &apb.ApproveNodeResponse{}, nil
}

// pubkeyRef is a nodeRef for requests that only name nodes by key.
type pubkeyRef struct{ pubkey []byte }

func (r pubkeyRef) GetPubkey() []byte { return r.pubkey }
func (r pubkeyRef) GetId() string     { return "" }

func (s *managementServer) UpdateNodeRoles(ctx context.Context, req *apb.UpdateNodeRolesRequest) (*apb.UpdateNodeRolesResponse, error) {
	id, pub, err := resolveNodeRef(req)
	if err != nil {
		return nil, err
	}
	s.muNodes.Lock()
	defer s.muNodes.Unlock()
	n, err := s.loadNode(ctx, id, pub)
	if err != nil {
		return nil, err
	}
	roles := proto.Clone(n.Roles).(*cpb.NodeRoles)
	if roles == nil {
		roles = &cpb.NodeRoles{}
	}
	adding := req.GetKubernetesWorker() || req.GetKubernetesController() || req.GetConsensusMember()
	if adding && n.FsmState != cpb.NodeState_NODE_STATE_UP {
		return nil, status.Errorf(codes.FailedPrecondition, "node %s is %s; only UP nodes can be given roles", id, n.FsmState)
	}
	if req.KubernetesWorker != nil {
		roles.KubernetesWorker = nil
		if *req.KubernetesWorker {
			roles.KubernetesWorker = &cpb.NodeRoles_KubernetesWorker{}
		}
	}
	if req.KubernetesController != nil {
		roles.KubernetesController = nil
		if *req.KubernetesController {
			roles.KubernetesController = &cpb.NodeRoles_KubernetesController{}
		}
	}
	wantConsensus := roles.ConsensusMember != nil
	if req.ConsensusMember != nil {
		wantConsensus = *req.ConsensusMember
	}
	if roles.KubernetesController != nil && !wantConsensus {
		return nil, status.Errorf(codes.FailedPrecondition, "the KubernetesController role needs the ConsensusMember role; remove KubernetesController first or together")
	}

	// etcd membership changes first and the role follows. If storing the
	// role fails, the background sync completes the change from etcd's
	// membership.
	switch {
	case wantConsensus && roles.ConsensusMember == nil:
		address := n.Status.GetExternalAddress()
		if address == "" {
			return nil, status.Errorf(codes.FailedPrecondition, "node %s has not reported its address yet", id)
		}
		join, err := s.consensus.AddNode(ctx, id, n.PublicKey, address)
		if errors.Is(err, consensus.ErrAlreadyMember) {
			return nil, status.Errorf(codes.FailedPrecondition, "%v", err)
		}
		if err != nil {
			return nil, rpcError(ctx, "adding consensus member", err)
		}
		roles.ConsensusMember = consensusMemberRole(join)
	case !wantConsensus && roles.ConsensusMember != nil:
		err := s.consensus.RemoveNode(ctx, id)
		switch {
		case errors.Is(err, consensus.ErrNotMember):
		case errors.Is(err, consensus.ErrQuorumAtRisk):
			return nil, status.Errorf(codes.FailedPrecondition, "%v", err)
		case err != nil:
			return nil, rpcError(ctx, "removing consensus member", err)
		}
		roles.ConsensusMember = nil
	}
	if proto.Equal(roles, n.Roles) {
		return &apb.UpdateNodeRolesResponse{}, nil
	}
	n.Roles = roles
	if err := s.saveNode(ctx, n); err != nil {
		return nil, err
	}
	return &apb.UpdateNodeRolesResponse{}, nil
}

func (s *managementServer) DecommissionNode(ctx context.Context, req *apb.DecommissionNodeRequest) (*apb.DecommissionNodeResponse, error) {
	id, pub, err := resolveNodeRef(req)
	if err != nil {
		return nil, err
	}
	s.muNodes.Lock()
	defer s.muNodes.Unlock()
	n, err := s.loadNode(ctx, id, pub)
	if err != nil {
		return nil, err
	}
	switch n.FsmState {
	case cpb.NodeState_NODE_STATE_UP:
	case cpb.NodeState_NODE_STATE_DECOMMISSIONED:
		return &apb.DecommissionNodeResponse{}, nil
	default:
		return nil, status.Errorf(codes.FailedPrecondition, "node %s is %s; only UP nodes are decommissioned, delete it instead", id, n.FsmState)
	}
	if hasRoles(n) {
		return nil, status.Errorf(codes.FailedPrecondition, "node %s still has roles %s; remove them first", id, strings.Join(roleNames(n), ", "))
	}
	n.FsmState = cpb.NodeState_NODE_STATE_DECOMMISSIONED
	if err := s.saveNode(ctx, n); err != nil {
		return nil, err
	}
	return &apb.DecommissionNodeResponse{}, nil
}

func (s *managementServer) DeleteNode(ctx context.Context, req *apb.DeleteNodeRequest) (*apb.DeleteNodeResponse, error) {
	id, pub, err := resolveNodeRef(req)
	if err != nil {
		return nil, err
	}
	s.muNodes.Lock()
	defer s.muNodes.Unlock()
	n, err := s.loadNode(ctx, id, pub)
	if err != nil {
		return nil, err
	}
	if hasRoles(n) && req.SafetyBypassHasRoles == nil {
		return nil, status.Errorf(codes.FailedPrecondition, "node %s still has roles %s; remove them first or set safety_bypass_has_roles", id, strings.Join(roleNames(n), ", "))
	}
	if n.FsmState == cpb.NodeState_NODE_STATE_UP && req.SafetyBypassNotDecommissioned == nil {
		return nil, status.Errorf(codes.FailedPrecondition, "node %s is UP; decommission it first or set safety_bypass_not_decommissioned", id)
	}
	// Revoke before deleting: if deleting fails, the node is still there
	// to try again, while deleting first could leave valid certificates
	// of a node nobody remembers.
	if err := s.pki.revoke(ctx, s.etcd, n.IssuedCertificates); err != nil {
		return nil, rpcError(ctx, "revoking certificates", err)
	}
	if err := s.writeNodes(ctx, nodeDeleteOps(n)...); err != nil {
		return nil, rpcError(ctx, "deleting node", err)
	}
	s.heartbeats.forget(id)
	return &apb.DeleteNodeResponse{}, nil
}

func (s *managementServer) UpdateNodeLabels(ctx context.Context, req *apb.UpdateNodeLabelsRequest) (*apb.UpdateNodeLabelsResponse, error) {
	id, pub, err := resolveNodeRef(req)
	if err != nil {
		return nil, err
	}
	if err := validateLabelChanges(req); err != nil {
		return nil, invalidArgument("%v", err)
	}
	s.muNodes.Lock()
	defer s.muNodes.Unlock()
	n, err := s.loadNode(ctx, id, pub)
	if err != nil {
		return nil, err
	}
	labels := node.LabelsFromProto(n.Labels)
	for _, p := range req.Upsert {
		labels[p.Key] = p.Value
	}
	for _, k := range req.Delete {
		delete(labels, k)
	}
	if len(labels) > node.MaxLabelsPerNode {
		return nil, status.Errorf(codes.OutOfRange, "node %s would have %d labels, at most %d are allowed", id, len(labels), node.MaxLabelsPerNode)
	}
	n.Labels = labels.Proto()
	if err := s.saveNode(ctx, n); err != nil {
		return nil, err
	}
	return &apb.UpdateNodeLabelsResponse{}, nil
}

// validateLabelChanges checks an UpdateNodeLabels request: valid keys and
// values, and every key at most once across upserts and deletes, so that the
// result does not depend on the order they are applied in.
func validateLabelChanges(req *apb.UpdateNodeLabelsRequest) error {
	if len(req.Upsert) > maxLabelChanges || len(req.Delete) > maxLabelChanges {
		return fmt.Errorf("at most %d upserts and %d deletes are allowed", maxLabelChanges, maxLabelChanges)
	}
	seen := make(map[string]bool)
	for _, p := range req.Upsert {
		if p == nil {
			return errors.New("empty upsert")
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
	for _, k := range req.Delete {
		if err := node.ValidateLabelKey(k); err != nil {
			return err
		}
		if seen[k] {
			return fmt.Errorf("label key %q given twice", k)
		}
		seen[k] = true
	}
	return nil
}

func (s *managementServer) ConfigureCluster(ctx context.Context, req *apb.ConfigureClusterRequest) (*apb.ConfigureClusterResponse, error) {
	if len(req.GetUpdateMask().GetPaths()) > maxUpdateMaskPaths {
		return nil, invalidArgument("update_mask has more than %d paths", maxUpdateMaskPaths)
	}
	s.muCluster.Lock()
	defer s.muCluster.Unlock()
	current, err := clusterConfigurationLoad(ctx, s.etcd)
	if err != nil {
		return nil, rpcError(ctx, "loading cluster configuration", err)
	}
	res, err := reconfigureCluster(current, req.BaseConfig, req.NewConfig, req.UpdateMask)
	switch {
	case errors.Is(err, errReconfigureConflict):
		return nil, status.Errorf(codes.FailedPrecondition, "%v", err)
	case err != nil:
		return nil, invalidArgument("%v", err)
	}
	if err := ValidateClusterConfiguration(res); err != nil {
		return nil, invalidArgument("resulting configuration: %v", err)
	}
	data, err := proto.Marshal(res)
	if err != nil {
		return nil, rpcError(ctx, "encoding cluster configuration", err)
	}
	if _, err := s.txnAsLeader(ctx, clientv3.OpPut(clusterConfigurationKey, string(data))); err != nil {
		return nil, rpcError(ctx, "storing cluster configuration", err)
	}
	return &apb.ConfigureClusterResponse{ResultingConfig: res}, nil
}
