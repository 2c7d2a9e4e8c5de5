// Package rpc secures the gRPC APIs of a Metropolis cluster: it sets up
// mutually authenticated TLS on servers and clients, works out who is calling
// and enforces what each method allows.
//
// Every API server runs on a node and presents that node's certificate.
// Clients present one of three things:
//
//   - a node certificate, when a node calls another node;
//   - a user certificate, when an operator calls the cluster (for example
//     with metroctl);
//   - a self-signed certificate for a bare ed25519 key, or nothing, when the
//     caller is not (yet) part of the cluster: a node registering or joining,
//     or an owner escrowing their first certificate. The TLS handshake still
//     proves that the caller holds the key of a self-signed certificate.
//
// Who may call what is declared next to each method in the API's .proto
// files, with the metropolis.proto.ext.authorization method option. The
// server's interceptors read it from the protobuf registry on each call, so
// the policy cannot drift from the API definition, and refuse methods that
// declare no policy at all: forgetting a policy must never open a method.
// Client certificates are checked per call rather than once per TLS
// connection, against the cluster CA and the cluster's current revocation
// list, so that revoking a certificate cuts off its holder at the next call
// even on connections that are already open.
//
// Handlers find the authenticated caller with GetPeerInfo.
package rpc
