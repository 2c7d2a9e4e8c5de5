// Package curator implements the curator, the cluster's control plane
// service: the keeper of the cluster's state (its nodes, their roles and
// certificates, its configuration) and the server of the APIs through which
// nodes take part in the cluster (Curator), operators manage it
// (Management), users obtain certificates (AAA) and clients find the leader
// (CuratorLocal).
//
// Every node with the ConsensusMember role runs a curator next to its etcd
// member. The curators elect a leader through etcd; only the leader serves
// the cluster's APIs, the others only point clients at it. Keeping all
// decisions in one process makes read-modify-write cycles simple (an
// in-process mutex each), and every write the leader makes is an etcd
// transaction conditional on its leadership, so a leader that was deposed
// without noticing yet cannot overwrite its successor's decisions.
//
// State lives in etcd, below the curator's namespace of the consensus
// service:
//
//	/nodes/<node ID>            curator.proto.private.Node
//	/join_keys/<hex join key>   node ID
//	/global/initial_owner       curator.proto.private.InitialOwner
//	/global/register_ticket     curator.proto.private.RegisterTicket
//	/cluster/configuration      metropolis.proto.common.ClusterConfiguration
//	/leader/<lease>             curator.proto.private.LeaderElectionValue
//	/cluster-pki/...            cluster CA, node and user certificates, CRL
//	/kubernetes-pki/...         Kubernetes identity CA and worker certificates
//
// The leader additionally keeps in memory what does not need to survive it:
// node heartbeats, and a cache of all node records from which it serves
// watches and listings (see nodeCache).
//
// A cluster starts with BootstrapNodeFinish, called by the first node once
// its consensus member runs. The client side of node watches is in the
// watcher package.
package curator
