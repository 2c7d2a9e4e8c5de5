package pki

// Namespace is the etcd key prefix below which a set of certificates is
// stored. Certificates in different namespaces may share names, which lets
// independent subsystems keep their PKIs in the same etcd cluster.
type Namespace struct {
	prefix string
}

// Namespaced returns the Namespace stored under the given etcd key prefix.
// The prefix is used verbatim, so it should end in a separator, for example
// "/cluster-pki/".
func Namespaced(prefix string) Namespace {
	return Namespace{prefix: prefix}
}

// Certificates, private keys and CRLs live in separate subtrees so that
// listing certificates never reads private keys, and so that access to the
// keys can be restricted on its own.

func (n *Namespace) certificateKey(name string) string {
	return n.prefix + "certificates/" + name
}

func (n *Namespace) privateKeyKey(name string) string {
	return n.prefix + "private-keys/" + name
}

func (n *Namespace) crlKey(name string) string {
	return n.prefix + "crls/" + name
}
