package clusternet

import (
	"fmt"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"

	"metropolis.dev/metropolis/node"
)

// firewallTable is the nftables table (inet family) in which the mesh keeps
// cluster traffic off the plain network.
//
// Its output and forward chains drop every IPv4 packet to node.ClusterNetwork
// that is about to leave through any interface but the mesh's (or loopback,
// for the node's own addresses). The route into the mesh is what normally
// keeps such packets in it; the rule makes that a guarantee rather than a
// consequence of the routing table, which a missing interface, a more
// specific route learnt over DHCP or a mistake elsewhere could change. A
// dropped packet fails its sender's write with EPERM instead of leaving in
// plaintext.
const firewallTable = "clusternet"

// ApplyFirewall replaces the mesh's nftables table with the rules described
// at firewallTable, for the mesh interface named link, atomically.
func ApplyFirewall(link string) error {
	c, err := nftables.New()
	if err != nil {
		return fmt.Errorf("opening nftables: %w", err)
	}
	t := &nftables.Table{Family: nftables.TableFamilyINet, Name: firewallTable}
	// Adding a table that exists is no error, deleting one that does not
	// is: adding first makes the deletion of an earlier incarnation's
	// table safe on a fresh boot.
	c.AddTable(t)
	c.DelTable(t)
	c.AddTable(t)
	accept := nftables.ChainPolicyAccept
	network := node.ClusterNetwork
	mask := make([]byte, 4)
	for i := range network.Bits() {
		mask[i/8] |= 0x80 >> (i % 8)
	}
	for _, h := range []struct {
		name string
		hook *nftables.ChainHook
	}{{"output", nftables.ChainHookOutput}, {"forward", nftables.ChainHookForward}} {
		chain := c.AddChain(&nftables.Chain{
			Name: h.name, Table: t, Type: nftables.ChainTypeFilter,
			Hooknum: h.hook, Priority: nftables.ChainPriorityFilter, Policy: &accept,
		})
		c.AddRule(&nftables.Rule{Table: t, Chain: chain, Exprs: []expr.Any{
			&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.NFPROTO_IPV4}},
			// IPv4 destination address, masked to the cluster network's
			// length.
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4},
			&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: mask, Xor: make([]byte, 4)},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: network.Addr().AsSlice()},
			&expr.Meta{Key: expr.MetaKeyOIFNAME, Register: 1},
			&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: interfaceName(link)},
			&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: interfaceName("lo")},
			&expr.Counter{},
			&expr.Verdict{Kind: expr.VerdictDrop},
		}})
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("applying the nftables table %s: %w", firewallTable, err)
	}
	return nil
}

// interfaceName is name as nftables compares interface names: padded with
// zeroes to the kernel's fixed length.
func interfaceName(name string) []byte {
	b := make([]byte, unix.IFNAMSIZ)
	copy(b, name)
	return b
}
