// Package netprobe sends test traffic from one node to another and measures
// its throughput. It is what NodeManagement.ProbePeer runs: the operator asks
// a node to send a number of bytes to another node, either to its mesh
// address (through WireGuard) or to its external address (over the plain
// network), and learns how long the transfer took.
//
// The probe's own traffic is plain TCP, neither encrypted nor compressed, on
// purpose: an end-to-end test captures the packets on the test network's
// switch and checks that a marker in the payload never appears in cleartext
// when the probe goes through the mesh, and does when it does not. Any
// encryption here would make that check meaningless.
//
// # Wire protocol
//
// The sender opens a TCP connection to the receiver's port
// node.NetworkProbePort and writes a 12-byte header, then the payload:
//
//	offset  size  content
//	0       3     magic "MNP"
//	3       1     version, 1
//	4       8     payload length in bytes, big-endian, 1 to MaxBytes
//	12      n     payload
//
// The receiver reads and discards exactly the announced number of bytes,
// then answers with the number of bytes it received as a big-endian uint64
// and closes the connection. It has no other answer: a receiver that refuses
// a connection (a source address it does not allow, too many probes at
// once, a bad header, a sender that stopped sending) closes it without a
// word, which the sender reports as ErrRefused.
//
// The sender measures from the moment the connection is established until
// the answer arrives. Connecting is left out as it is a fixed cost unrelated
// to throughput: a TCP handshake, and through the mesh possibly also a
// WireGuard handshake, as the first packet to an idle peer starts one. The
// answer's round trip is included, which only matters for small payloads;
// probes meant to measure throughput should send megabytes.
//
// # Limits
//
// The receiver listens on every address of the node, so anything on the
// network can connect. Server therefore closes connections from source
// addresses its Allowed function rejects (the cluster network service
// allows the cluster nodes' external and mesh addresses), receives only
// four probes at a time and closes further connections at once, and bounds
// every connection in time: each read must make progress within 10
// seconds, and a whole connection is cut after 15 minutes, so that a
// stalled or trickling sender cannot hold one of the few slots. Refused
// connections are logged with their source address, at most once every 10
// seconds, so that whoever can reach the port cannot flood the node's log.
package netprobe
