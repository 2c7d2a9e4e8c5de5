// Package core is the reusable client side of metroctl: where an operator's
// credentials live, how a client comes to trust a cluster, how it reaches the
// curator leader and single nodes, and how nodes are presented. Tools that
// launch or test clusters use it to talk to them the same way metroctl does.
//
// Everything revolves around one trust decision: the cluster CA. A client
// that does not know the CA yet fetches it over an unverified connection and
// has it accepted once, by the operator comparing its fingerprint or by an
// expected fingerprint given up front (trust on first use). The accepted CA
// is stored in the configuration directory next to the owner's key and
// certificate, and from then on every connection verifies the servers it
// talks to against that CA and nothing else. When a cluster presents another
// CA, calls fail with a CAMismatchError that says so, rather than with a bare
// TLS handshake error.
//
// Connections to the cluster go to the curator leader through the
// metropolis:///control resolver, seeded with the endpoints the operator
// names, so that commands keep working when the leader moves. Connections to
// a single node (its NodeManagement service) go directly to the node's
// address and accept only that node. Both can be tunnelled through a SOCKS5
// proxy, which is how a developer reaches a test cluster behind a switch.
package core
