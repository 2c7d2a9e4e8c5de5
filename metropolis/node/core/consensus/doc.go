// Package consensus runs the node's member of the cluster's etcd, the store
// that the curator and Kubernetes keep the cluster's state in.
//
// etcd is embedded into the node's core and runs as a supervisor runnable
// (Service.Run). Its state is published as an event value (Service.Value):
// a running Status hands out clients and manages membership, and a Status
// that is not running says that the member has stopped.
//
// # Clients
//
// Clients only talk to etcd over a unix socket in the node's ephemeral
// directory; there is no TCP client listener, so etcd needs no client
// authentication: whoever can reach the socket is part of the node's core.
// Each user gets a client confined to its own key prefix
// ("namespaced:curator/", "namespaced:kubernetes/"), built from
// go.etcd.io/etcd/client/v3/namespace, so that it can use elections and
// sessions as if it had etcd to itself.
//
// # Peers
//
// Members talk to each other over mutually authenticated TLS with a PKI of
// their own (osbase/pki, stored in etcd below "namespaced:etcd-pki/"): a CA,
// and for each member a certificate for its node's ed25519 key, naming the
// node ID and the member's IP address. The certificates, the node's key and
// the CA's revocation list live in the member's data directory, where etcd
// reads them; the CRL is kept up to date from etcd, and etcd checks every
// incoming peer connection against it, so a removed node, whose certificate
// is revoked, cannot connect any more.
//
// Peer URLs are https://<ip>:<port>. They could name nodes by their IDs, but
// then every member would have to resolve every other member's ID to an
// address, and consensus, the component everything else depends on, would
// depend on a hosts file or a name service kept up to date by components
// that themselves need consensus. With IP addresses, a member needs nothing
// but its peers' addresses, which it gets with the membership. The price is
// that a node's address is part of its membership: a node whose address
// changes has to be removed and added again.
//
// # Membership
//
// A new cluster is bootstrapped in two steps, because the peer PKI lives in
// etcd: etcd first runs alone without listening for peers, the PKI and the
// first member's credentials are created in it and written to disk, and etcd
// is then restarted with peer TLS. Every later start, including after an
// interrupted bootstrap, continues from the data on disk.
//
// New members are added as learners (Status.AddNode), which catch up with
// the cluster's data without voting. Every member runs an autopromoter, and
// the one on the leader promotes learners once etcd considers them in sync.
// A learner does not serve clients, so a joining member's Status only runs
// once it has been promoted. Since etcd only learns a member's name once it
// has started, a record below "namespaced:etcd-members/" ties each node ID
// to the member it was added as, so that members can be found and removed by
// node ID at any time.
//
// Status.RemoveNode removes a member and revokes its peer certificate. etcd's
// strict reconfiguration check refuses removals that could cost the cluster
// its quorum (ErrQuorumAtRisk).
//
// # Logs
//
// etcd logs through zap, and a lot. Its entries are passed on to the
// runnable's log tree, keeping warnings, errors and the messages about
// membership and leadership, and moving everything else to higher
// verbosity levels.
package consensus
