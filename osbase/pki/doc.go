// Package pki keeps an X.509 public key infrastructure in etcd.
//
// Metropolis nodes authenticate each other, their operators and the
// workloads they run with TLS certificates. Those certificates have to be
// issued exactly once, even when several nodes of a cluster race to create
// them, and have to survive restarts of every single node. etcd, the
// cluster's consensus store, already provides both properties, so this
// package keeps certificate authorities, certificates and certificate
// revocation lists there.
//
// A Certificate describes a certificate by its place in a Namespace, its
// Issuer (another Certificate acting as a CA, or SelfSigned) and a template
// (see CA, Server and Client). Ensure is the only way to obtain it: the first
// call anywhere in the cluster issues and stores it in a single etcd
// transaction, every later or concurrent call returns that same stored
// certificate. All keys are ed25519.
//
// A Certificate is either managed, in which case its private key is generated
// here and kept in etcd next to the certificate, or external, in which case
// the holder of the private key hands in only its public key and the private
// key never reaches etcd. Storing managed private keys in etcd is deliberate:
// anybody who can read the consensus store of a cluster controls it anyway,
// so etcd has to be reachable only by trusted parties and its data has to be
// encrypted at rest.
//
// A CA that is allowed to sign CRLs gets an empty revocation list when it is
// created. Revoke adds certificates to it, CRL reads it and WatchCRL follows
// it, so that TLS endpoints can stop accepting revoked certificates (see
// RejectRevoked) without restarting.
//
// Certificates are valid from the Unix epoch until 9999-12-31T23:59:59Z, the
// value RFC 5280 reserves for certificates without a well-defined expiration
// date, unless a certificate's template sets its own bounds. Metropolis ends
// the life of a certificate by revoking it, not by letting it expire: nodes
// may boot with a clock that is far off until they have reached a time
// server, and a cluster must keep working for as long as it exists without
// anybody rotating its certificates. Bounded validity would turn both
// situations into outages while adding no protection that revocation does
// not already give. Callers that want short-lived certificates set NotBefore
// and NotAfter in the template. For the same reason CRLs name that date as
// their next update; their users follow changes through etcd instead.
//
// Below the prefix of its Namespace, a certificate called name is stored as
// DER at certificates/name, the PKCS #8 DER private key of a managed
// certificate at private-keys/name and the DER CRL of a CA at crls/name.
package pki
