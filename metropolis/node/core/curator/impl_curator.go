package curator

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/subtle"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	ipb "metropolis.dev/metropolis/node/core/curator/proto/api"
	ppb "metropolis.dev/metropolis/node/core/curator/proto/private"
	"metropolis.dev/metropolis/node/core/identity"
	"metropolis.dev/metropolis/node/core/rpc"
	cpb "metropolis.dev/metropolis/proto/common"
	"metropolis.dev/osbase/pki"
)

// curatorServer implements the Curator API on the leader: what nodes call to
// join the cluster and to take part in it.
type curatorServer struct {
	ipb.UnimplementedCuratorServer
	*leadership
}

// callerNode returns the node calling, or a PermissionDenied error for
// callers that are not nodes.
func callerNode(ctx context.Context) (*rpc.PeerInfoNode, error) {
	pi := rpc.GetPeerInfo(ctx)
	if pi == nil || pi.Node == nil {
		return nil, status.Errorf(codes.PermissionDenied, "only nodes may call this, not %s", pi)
	}
	return pi.Node, nil
}

// callerSelfSignedKey returns the key of the self-signed certificate an
// unauthenticated caller presented.
func callerSelfSignedKey(ctx context.Context) (ed25519.PublicKey, error) {
	pi := rpc.GetPeerInfo(ctx)
	if pi == nil || pi.Unauthenticated == nil || pi.Unauthenticated.SelfSignedPublicKey == nil {
		return nil, status.Error(codes.Unauthenticated, "call with a self-signed certificate of the key to authenticate")
	}
	return pi.Unauthenticated.SelfSignedPublicKey, nil
}

func (s *curatorServer) UpdateNodeStatus(ctx context.Context, req *ipb.UpdateNodeStatusRequest) (*ipb.UpdateNodeStatusResponse, error) {
	caller, err := callerNode(ctx)
	if err != nil {
		return nil, err
	}
	if err := validateNodeID(req.NodeId); err != nil {
		return nil, invalidArgument("node_id: %v", err)
	}
	if req.NodeId != caller.ID {
		return nil, status.Errorf(codes.PermissionDenied, "node %s may only update its own status, not that of %s", caller.ID, req.NodeId)
	}
	if err := validateNodeStatus(req.Status); err != nil {
		return nil, invalidArgument("%v", err)
	}
	st := proto.Clone(req.Status).(*cpb.NodeStatus)
	st.Timestamp = timestamppb.Now()

	s.muNodes.Lock()
	defer s.muNodes.Unlock()
	n, err := s.loadNode(ctx, caller.ID, nil)
	if err != nil {
		return nil, err
	}
	n.Status = st
	if err := s.saveNode(ctx, n); err != nil {
		return nil, err
	}
	return &ipb.UpdateNodeStatusResponse{}, nil
}

func (s *curatorServer) Heartbeat(srv grpc.BidiStreamingServer[ipb.HeartbeatUpdateRequest, ipb.HeartbeatUpdateResponse]) error {
	ctx := srv.Context()
	caller, err := callerNode(ctx)
	if err != nil {
		return err
	}
	for {
		if _, err := srv.Recv(); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		// A deleted node's certificate is revoked, but a stream opened
		// before that stays open; end it.
		e, err := s.nodes.get(ctx, caller.ID)
		if err != nil {
			return rpcError(ctx, "heartbeat", err)
		}
		if e == nil {
			return status.Errorf(codes.PermissionDenied, "node %s does not exist (anymore)", caller.ID)
		}
		s.heartbeats.record(caller.ID, time.Now())
		if err := srv.Send(&ipb.HeartbeatUpdateResponse{}); err != nil {
			return err
		}
	}
}

func (s *curatorServer) RegisterNode(ctx context.Context, req *ipb.RegisterNodeRequest) (*ipb.RegisterNodeResponse, error) {
	pub, err := callerSelfSignedKey(ctx)
	if err != nil {
		return nil, err
	}
	if err := validateRegisterNodeRequest(req); err != nil {
		return nil, invalidArgument("%v", err)
	}
	if bytes.Equal(pub, req.JoinKey) {
		return nil, invalidArgument("join_key must differ from the node key")
	}
	ticket, err := registerTicketLoad(ctx, s.etcd)
	if err != nil {
		return nil, rpcError(ctx, "loading register ticket", err)
	}
	if ticket == nil || subtle.ConstantTimeCompare(ticket, req.RegisterTicket) != 1 {
		return nil, status.Error(codes.PermissionDenied, "invalid register ticket")
	}
	cfg, err := clusterConfigurationLoad(ctx, s.etcd)
	if err != nil {
		return nil, rpcError(ctx, "loading cluster configuration", err)
	}
	tpmUsage, err := NodeTPMUsage(cfg, req.HaveLocalTpm)
	if err != nil {
		return nil, status.Errorf(codes.PermissionDenied, "%v", err)
	}
	storageSecurity, err := NodeStorageSecurity(cfg)
	if err != nil {
		return nil, rpcError(ctx, "cluster configuration", err)
	}
	res := &ipb.RegisterNodeResponse{
		ClusterConfiguration:           cfg,
		TpmUsage:                       tpmUsage,
		RecommendedNodeStorageSecurity: storageSecurity,
	}

	s.muNodes.Lock()
	defer s.muNodes.Unlock()
	id := identity.NodeID(pub)
	n, err := nodeLoad(ctx, s.etcd, id)
	var ops []clientv3.Op
	switch {
	case errors.Is(err, errNodeNotFound):
		n = &ppb.Node{PublicKey: pub, FsmState: cpb.NodeState_NODE_STATE_NEW}
	case err != nil:
		return nil, rpcError(ctx, "loading node", err)
	case n.FsmState != cpb.NodeState_NODE_STATE_NEW:
		return nil, status.Errorf(codes.FailedPrecondition, "node %s is already registered and %s", id, n.FsmState)
	case !bytes.Equal(n.JoinKey, req.JoinKey):
		// A node that registers again, for example after losing its
		// first attempt, replaces what it registered with.
		ops = append(ops, clientv3.OpDelete(joinKeyKey(n.JoinKey)))
	}
	if other, err := s.joinKeyOwner(ctx, req.JoinKey); err != nil {
		return nil, err
	} else if other != "" && other != id {
		return nil, status.Errorf(codes.FailedPrecondition, "join key is already used by another node")
	}
	n.JoinKey = req.JoinKey
	n.TpmUsage = tpmUsage
	n.Labels = sortedLabels(req.Labels)
	put, err := nodePutOps(n)
	if err != nil {
		return nil, rpcError(ctx, "storing node", err)
	}
	if err := s.writeNodes(ctx, append(ops, put...)...); err != nil {
		return nil, rpcError(ctx, "storing node", err)
	}
	return res, nil
}

// joinKeyOwner returns the ID of the node using joinKey, or "".
func (s *curatorServer) joinKeyOwner(ctx context.Context, joinKey []byte) (string, error) {
	res, err := s.etcd.Get(ctx, joinKeyKey(joinKey))
	if err != nil {
		return "", rpcError(ctx, "looking up join key", err)
	}
	if len(res.Kvs) == 0 {
		return "", nil
	}
	return string(res.Kvs[0].Value), nil
}

func (s *curatorServer) CommitNode(ctx context.Context, req *ipb.CommitNodeRequest) (*ipb.CommitNodeResponse, error) {
	pub, err := callerSelfSignedKey(ctx)
	if err != nil {
		return nil, err
	}
	if err := validateCommitNodeRequest(req); err != nil {
		return nil, invalidArgument("%v", err)
	}
	cfg, err := clusterConfigurationLoad(ctx, s.etcd)
	if err != nil {
		return nil, rpcError(ctx, "loading cluster configuration", err)
	}
	if err := ValidateNodeStorage(cfg, req.StorageSecurity); err != nil {
		return nil, status.Errorf(codes.FailedPrecondition, "%v", err)
	}
	ca := s.credentials.ClusterCA().Raw

	s.muNodes.Lock()
	defer s.muNodes.Unlock()
	id := identity.NodeID(pub)
	n, err := s.loadNode(ctx, id, pub)
	if err != nil {
		return nil, err
	}
	switch n.FsmState {
	case cpb.NodeState_NODE_STATE_NEW:
		return nil, status.Errorf(codes.PermissionDenied, "node %s is not approved yet; wait for approval", id)
	case cpb.NodeState_NODE_STATE_STANDBY:
	case cpb.NodeState_NODE_STATE_UP:
		// A node whose first commit succeeded but never saw the answer
		// retries; give it the same answer.
		cert := latestNodeCertificate(n)
		if cert != nil && bytes.Equal(n.ClusterUnlockKey, req.ClusterUnlockKey) && n.StorageSecurity == req.StorageSecurity {
			return &ipb.CommitNodeResponse{CaCertificate: ca, NodeCertificate: cert}, nil
		}
		return nil, status.Errorf(codes.FailedPrecondition, "node %s already committed", id)
	default:
		return nil, status.Errorf(codes.FailedPrecondition, "node %s is %s and cannot commit", id, n.FsmState)
	}

	cert, err := s.pki.issueNodeCertificate(ctx, s.etcd, pub)
	if err != nil {
		return nil, rpcError(ctx, "issuing node certificate", err)
	}
	n.FsmState = cpb.NodeState_NODE_STATE_UP
	n.ClusterUnlockKey = req.ClusterUnlockKey
	n.StorageSecurity = req.StorageSecurity
	n.IssuedCertificates = append(n.IssuedCertificates, cert)
	if err := s.saveNode(ctx, n); err != nil {
		return nil, err
	}
	return &ipb.CommitNodeResponse{CaCertificate: ca, NodeCertificate: cert}, nil
}

func (s *curatorServer) JoinNode(ctx context.Context, req *ipb.JoinNodeRequest) (*ipb.JoinNodeResponse, error) {
	joinKey, err := callerSelfSignedKey(ctx)
	if err != nil {
		return nil, err
	}
	id, err := s.joinKeyOwner(ctx, joinKey)
	if err != nil {
		return nil, err
	}
	if id == "" {
		return nil, status.Error(codes.NotFound, "no node has this join key")
	}
	n, err := s.loadNode(ctx, id, nil)
	if err != nil {
		return nil, err
	}
	cfg, err := clusterConfigurationLoad(ctx, s.etcd)
	if err != nil {
		return nil, rpcError(ctx, "loading cluster configuration", err)
	}
	sealed := req.UsingSealedConfiguration
	switch {
	case cfg.TpmMode == cpb.ClusterConfiguration_TPM_MODE_REQUIRED && !sealed:
		return nil, status.Error(codes.PermissionDenied, "the cluster requires nodes to rejoin with a TPM-sealed configuration")
	case cfg.TpmMode == cpb.ClusterConfiguration_TPM_MODE_DISABLED && sealed:
		return nil, status.Error(codes.PermissionDenied, "the cluster does not use TPMs, but the node rejoins with a TPM-sealed configuration")
	case n.TpmUsage == cpb.NodeTPMUsage_NODE_TPM_USAGE_PRESENT_AND_USED && !sealed:
		return nil, status.Error(codes.PermissionDenied, "the node registered using its TPM, but rejoins without it")
	case n.TpmUsage != cpb.NodeTPMUsage_NODE_TPM_USAGE_PRESENT_AND_USED && sealed:
		return nil, status.Error(codes.PermissionDenied, "the node registered without using a TPM, but rejoins with it")
	}
	if n.FsmState != cpb.NodeState_NODE_STATE_UP {
		return nil, status.Errorf(codes.FailedPrecondition, "node %s is %s, not UP", id, n.FsmState)
	}
	return &ipb.JoinNodeResponse{ClusterUnlockKey: n.ClusterUnlockKey}, nil
}

func (s *curatorServer) IssueCertificate(ctx context.Context, req *ipb.IssueCertificateRequest) (*ipb.IssueCertificateResponse, error) {
	caller, err := callerNode(ctx)
	if err != nil {
		return nil, err
	}
	kw := req.GetKubernetesWorker()
	if kw == nil {
		return nil, invalidArgument("kind missing: only kubernetes_worker certificates can be issued")
	}
	for _, k := range []struct {
		name string
		key  []byte
	}{
		{"kubelet_pubkey", kw.KubeletPubkey},
		{"csi_provisioner_pubkey", kw.CsiProvisionerPubkey},
		{"netservices_pubkey", kw.NetservicesPubkey},
	} {
		if err := validateKey(k.name, k.key); err != nil {
			return nil, invalidArgument("%v", err)
		}
	}

	s.muNodes.Lock()
	defer s.muNodes.Unlock()
	n, err := s.loadNode(ctx, caller.ID, nil)
	if err != nil {
		return nil, err
	}
	if n.Roles.GetKubernetesWorker() == nil {
		return nil, status.Errorf(codes.PermissionDenied, "node %s does not have the KubernetesWorker role", caller.ID)
	}
	id := caller.ID
	caDER, err := s.pki.kubernetesCA.Ensure(ctx, s.etcd)
	if err != nil {
		return nil, rpcError(ctx, "loading Kubernetes CA", err)
	}
	kubeletServer := pki.Server([]string{id}, nil)
	kubeletServer.Subject.CommonName = "system:node:" + id
	kubeletServer.Subject.Organization = []string{"system:nodes"}
	kubeletClient := pki.Client("system:node:" + id)
	kubeletClient.Subject.Organization = []string{"system:nodes"}
	issue := []struct {
		prefix   string
		template x509.Certificate
		key      ed25519.PublicKey
	}{
		{"kubelet-server:" + id, kubeletServer, kw.KubeletPubkey},
		{"kubelet-client:" + id, kubeletClient, kw.KubeletPubkey},
		{"csi-provisioner:" + id, pki.Client("metropolis:csi-provisioner:" + id), kw.CsiProvisionerPubkey},
		{"netservices:" + id, pki.Client("metropolis:netservices:" + id), kw.NetservicesPubkey},
	}
	issued := make([][]byte, len(issue))
	for i, c := range issue {
		if issued[i], err = issueExternal(ctx, s.etcd, s.pki.kubernetesCA, c.prefix, c.template, c.key); err != nil {
			return nil, rpcError(ctx, "issuing certificate", err)
		}
	}

	// A worker asks for certificates whenever it starts, with fresh keys.
	// Those of its previous run are revoked, so that a node record holds a
	// bounded number of certificates. Revoking first means that a failed
	// write leaves a record listing revoked certificates, never one that
	// forgets valid ones.
	var keep, superseded [][]byte
	for _, der := range n.IssuedCertificates {
		cert, err := x509.ParseCertificate(der)
		if err == nil {
			ca, err := s.pki.issuerOf(ctx, s.etcd, cert)
			if err != nil {
				return nil, rpcError(ctx, "checking issued certificates", err)
			}
			if ca == s.pki.kubernetesCA {
				superseded = append(superseded, der)
				continue
			}
		}
		keep = append(keep, der)
	}
	if err := s.pki.revoke(ctx, s.etcd, superseded); err != nil {
		return nil, rpcError(ctx, "revoking superseded certificates", err)
	}
	n.IssuedCertificates = append(keep, issued...)
	if err := s.saveNode(ctx, n); err != nil {
		return nil, err
	}
	return &ipb.IssueCertificateResponse{
		Kind: &ipb.IssueCertificateResponse_KubernetesWorker_{
			KubernetesWorker: &ipb.IssueCertificateResponse_KubernetesWorker{
				IdentityCaCertificate:     caDER,
				KubeletServerCertificate:  issued[0],
				KubeletClientCertificate:  issued[1],
				CsiProvisionerCertificate: issued[2],
				NetservicesCertificate:    issued[3],
			},
		},
	}, nil
}

func (s *curatorServer) UpdateNodeClusterNetworking(ctx context.Context, req *ipb.UpdateNodeClusterNetworkingRequest) (*ipb.UpdateNodeClusterNetworkingResponse, error) {
	caller, err := callerNode(ctx)
	if err != nil {
		return nil, err
	}
	cn, err := validateClusternet(req.Clusternet)
	if err != nil {
		return nil, invalidArgument("%v", err)
	}

	s.muNodes.Lock()
	defer s.muNodes.Unlock()
	n, err := s.loadNode(ctx, caller.ID, nil)
	if err != nil {
		return nil, err
	}
	if n.Status.GetExternalAddress() == "" {
		return nil, status.Errorf(codes.FailedPrecondition, "node %s has not reported its status yet", caller.ID)
	}
	external, err := netip.ParseAddr(n.Status.ExternalAddress)
	if err != nil {
		return nil, status.Errorf(codes.FailedPrecondition, "node %s has an invalid external address: %v", caller.ID, err)
	}
	if err := checkClusternetPrefixes(cn, external); err != nil {
		return nil, invalidArgument("%v", err)
	}
	all, _, err := s.nodes.all(ctx)
	if err != nil {
		return nil, rpcError(ctx, "listing nodes", err)
	}
	others := make(map[string]*cpb.NodeClusterNetworking)
	for _, other := range all {
		if other.id != caller.ID {
			others[other.id] = other.node.Clusternet
		}
	}
	if err := checkClusternetConflicts(cn, others); err != nil {
		return nil, status.Errorf(codes.FailedPrecondition, "%v", err)
	}
	cn.MeshAddress = n.Clusternet.GetMeshAddress()
	if cn.MeshAddress == "" {
		addr, err := freeMeshAddress(others)
		if err != nil {
			return nil, status.Errorf(codes.ResourceExhausted, "%v", err)
		}
		cn.MeshAddress = addr.String()
	}
	n.Clusternet = cn
	if err := s.saveNode(ctx, n); err != nil {
		return nil, err
	}
	return &ipb.UpdateNodeClusterNetworkingResponse{MeshAddress: cn.MeshAddress}, nil
}

func (s *curatorServer) GetConsensusStatus(ctx context.Context, _ *ipb.GetConsensusStatusRequest) (*ipb.GetConsensusStatusResponse, error) {
	members, err := s.consensus.Members(ctx)
	if err != nil {
		return nil, rpcError(ctx, "listing consensus members", err)
	}
	res := &ipb.GetConsensusStatusResponse{}
	for _, m := range members {
		st := ipb.GetConsensusStatusResponse_EtcdMember_STATUS_FULL
		if m.Learner {
			st = ipb.GetConsensusStatusResponse_EtcdMember_STATUS_LEARNER
		}
		res.EtcdMember = append(res.EtcdMember, &ipb.GetConsensusStatusResponse_EtcdMember{Id: m.NodeID, Status: st})
	}
	return res, nil
}

// loadNode reads the node id for a handler: NotFound if it does not exist
// (or does not have the public key pub, if given).
func (l *leadership) loadNode(ctx context.Context, id string, pub []byte) (*ppb.Node, error) {
	n, err := nodeLoad(ctx, l.etcd, id)
	if errors.Is(err, errNodeNotFound) || (err == nil && !matchesRef(n, pub)) {
		return nil, status.Errorf(codes.NotFound, "node %s not found", id)
	}
	if err != nil {
		return nil, rpcError(ctx, "loading node", err)
	}
	return n, nil
}

// saveNode stores n as leader.
func (l *leadership) saveNode(ctx context.Context, n *ppb.Node) error {
	ops, err := nodePutOps(n)
	if err != nil {
		return rpcError(ctx, "storing node", err)
	}
	if err := l.writeNodes(ctx, ops...); err != nil {
		return rpcError(ctx, fmt.Sprintf("storing node %s", nodeIDOf(n)), err)
	}
	return nil
}
