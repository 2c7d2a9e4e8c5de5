package network

import (
	"encoding/binary"
	"fmt"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"

	"metropolis.dev/metropolis/node"
)

// The node's firewall, in two nftables tables of the inet family (IPv4 and
// IPv6 alike):
//
// node_filter accepts, on input, what the node must receive and drops the
// rest:
//   - packets of connections the node is part of (conntrack state
//     established or related), so that whatever the node connects to can
//     answer, and nothing else has to be opened for outgoing traffic;
//   - everything from the loopback interface;
//   - ICMP and ICMPv6, which IPv4 path MTU discovery and IPv6 neighbour
//     discovery cannot do without;
//   - the node's services: TCP ports in the set tcp_services (the consensus
//     peer, curator, network probe, node management and metrics ports) and UDP ports in
//     the set udp_services (the cluster network's WireGuard port);
//   - DHCP replies to the node's client, which are not part of a tracked
//     connection when broadcast.
//
// Packets conntrack finds invalid are dropped before any of this. Forwarded
// packets are accepted: the node routes for its pods and the cluster
// network, whose policies are enforced by the services that set them up.
// Outgoing packets are not filtered.
//
// node_nat masquerades packets from the networks in the set
// masquerade_sources when they leave for a destination outside those
// networks, so that pods can reach the world with the node's address. The
// set starts out empty and is filled by the service owning the pod network.
//
// The sets are named so that later services can open ports or add networks
// without replacing the ruleset.
const (
	filterTable       = "node_filter"
	natTable          = "node_nat"
	tcpServicesSet    = "tcp_services"
	udpServicesSet    = "udp_services"
	masqueradeFromSet = "masquerade_sources"
)

var (
	nodeTCPPorts = []uint16{node.ConsensusPort, node.CuratorServicePort, node.NetworkProbePort, node.NodeManagementPort, node.MetricsPort}
	nodeUDPPorts = []uint16{node.WireGuardPort}
)

// applyFirewall replaces the node's tables with the ruleset described above,
// atomically: the kernel applies all of it or nothing.
func applyFirewall() error {
	c, err := nftables.New()
	if err != nil {
		return fmt.Errorf("opening nftables: %w", err)
	}
	filter := &nftables.Table{Family: nftables.TableFamilyINet, Name: filterTable}
	nat := &nftables.Table{Family: nftables.TableFamilyINet, Name: natTable}
	for _, t := range []*nftables.Table{filter, nat} {
		// Adding a table that exists is no error, deleting one that does
		// not is; adding first makes the deletion of the previous
		// incarnation's tables safe on a fresh boot.
		c.AddTable(t)
		c.DelTable(t)
		c.AddTable(t)
	}
	if err := addFilterRules(c, filter); err != nil {
		return err
	}
	if err := addNATRules(c, nat); err != nil {
		return err
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("applying nftables ruleset: %w", err)
	}
	return nil
}

func addFilterRules(c *nftables.Conn, t *nftables.Table) error {
	drop := nftables.ChainPolicyDrop
	accept := nftables.ChainPolicyAccept
	input := c.AddChain(&nftables.Chain{
		Name: "input", Table: t, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookInput, Priority: nftables.ChainPriorityFilter, Policy: &drop,
	})
	c.AddChain(&nftables.Chain{
		Name: "forward", Table: t, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookForward, Priority: nftables.ChainPriorityFilter, Policy: &accept,
	})

	tcpServices := &nftables.Set{Table: t, Name: tcpServicesSet, KeyType: nftables.TypeInetService}
	if err := c.AddSet(tcpServices, portElements(nodeTCPPorts)); err != nil {
		return fmt.Errorf("adding set %s: %w", tcpServicesSet, err)
	}
	udpServices := &nftables.Set{Table: t, Name: udpServicesSet, KeyType: nftables.TypeInetService}
	if err := c.AddSet(udpServices, portElements(nodeUDPPorts)); err != nil {
		return fmt.Errorf("adding set %s: %w", udpServicesSet, err)
	}

	rules := [][]expr.Any{
		ctStateIs(expr.CtStateBitINVALID, verdict(expr.VerdictDrop)),
		ctStateIs(expr.CtStateBitESTABLISHED|expr.CtStateBitRELATED, verdict(expr.VerdictAccept)),
		concat(
			[]expr.Any{&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: 1}},
			cmpEq(ifname("lo")),
			verdict(expr.VerdictAccept)),
		concat(l4proto(unix.IPPROTO_ICMP), verdict(expr.VerdictAccept)),
		concat(l4proto(unix.IPPROTO_ICMPV6), verdict(expr.VerdictAccept)),
		concat(l4proto(unix.IPPROTO_TCP), destinationPort(),
			[]expr.Any{&expr.Lookup{SourceRegister: 1, SetName: tcpServices.Name, SetID: tcpServices.ID}},
			verdict(expr.VerdictAccept)),
		concat(l4proto(unix.IPPROTO_UDP), destinationPort(),
			[]expr.Any{&expr.Lookup{SourceRegister: 1, SetName: udpServices.Name, SetID: udpServices.ID}},
			verdict(expr.VerdictAccept)),
		concat(l4proto(unix.IPPROTO_UDP),
			[]expr.Any{&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 0, Len: 2}},
			cmpEq(port(67)),
			destinationPort(), cmpEq(port(68)),
			verdict(expr.VerdictAccept)),
	}
	for _, exprs := range rules {
		c.AddRule(&nftables.Rule{Table: t, Chain: input, Exprs: exprs})
	}
	return nil
}

func addNATRules(c *nftables.Conn, t *nftables.Table) error {
	postrouting := c.AddChain(&nftables.Chain{
		Name: "postrouting", Table: t, Type: nftables.ChainTypeNAT,
		Hooknum: nftables.ChainHookPostrouting, Priority: nftables.ChainPriorityNATSource,
	})
	sources := &nftables.Set{Table: t, Name: masqueradeFromSet, KeyType: nftables.TypeIPAddr, Interval: true}
	if err := c.AddSet(sources, nil); err != nil {
		return fmt.Errorf("adding set %s: %w", masqueradeFromSet, err)
	}
	c.AddRule(&nftables.Rule{Table: t, Chain: postrouting, Exprs: concat(
		[]expr.Any{&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1}},
		cmpEq([]byte{unix.NFPROTO_IPV4}),
		[]expr.Any{
			// IPv4 source address.
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 12, Len: 4},
			&expr.Lookup{SourceRegister: 1, SetName: sources.Name, SetID: sources.ID},
			// IPv4 destination address, not in the set.
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4},
			&expr.Lookup{SourceRegister: 1, SetName: sources.Name, SetID: sources.ID, Invert: true},
			&expr.Masq{},
		})})
	return nil
}

func concat(parts ...[]expr.Any) []expr.Any {
	var all []expr.Any
	for _, p := range parts {
		all = append(all, p...)
	}
	return all
}

func verdict(k expr.VerdictKind) []expr.Any {
	return []expr.Any{&expr.Verdict{Kind: k}}
}

func cmpEq(data []byte) []expr.Any {
	return []expr.Any{&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: data}}
}

// ctStateIs matches packets whose conntrack state has any of the bits in
// mask, and applies then.
func ctStateIs(mask uint32, then []expr.Any) []expr.Any {
	return concat([]expr.Any{
		&expr.Ct{Register: 1, Key: expr.CtKeySTATE},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: nativeUint32(mask), Xor: nativeUint32(0)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: nativeUint32(0)},
	}, then)
}

func l4proto(proto byte) []expr.Any {
	return concat([]expr.Any{&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1}}, cmpEq([]byte{proto}))
}

// destinationPort loads the TCP or UDP destination port into register 1.
func destinationPort() []expr.Any {
	return []expr.Any{&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2}}
}

func port(p uint16) []byte {
	return binary.BigEndian.AppendUint16(nil, p)
}

func portElements(ports []uint16) []nftables.SetElement {
	var elems []nftables.SetElement
	for _, p := range ports {
		elems = append(elems, nftables.SetElement{Key: port(p)})
	}
	return elems
}

// ifname is an interface name as nftables compares it: padded with zeroes
// to IFNAMSIZ.
func ifname(name string) []byte {
	b := make([]byte, unix.IFNAMSIZ)
	copy(b, name)
	return b
}

func nativeUint32(v uint32) []byte {
	return binary.NativeEndian.AppendUint32(nil, v)
}
