// Package nodenames makes a node's DNS resolver answer the IDs of the
// cluster's nodes with their addresses, so that programs on the node, and
// operators reading its logs, can use node IDs as host names.
//
// Monogon OS wrote node IDs into /etc/hosts. Metropolis's root filesystem
// is read-only and every program on the node asks the local resolver
// (osbase/net/dns) anyway, so the names are served there instead: each node
// ID is a zone of its own, registered with the resolver while the node is
// known, and a query for a node that is gone falls through to the
// resolver's forwarder like any other name. Being a zone owner, the table
// answers authoritatively: an address for A queries, and an empty answer for
// other types, so that a lookup of AAAA does not leave the node.
package nodenames

import (
	"net/netip"
	"strings"
	"sync"

	"github.com/miekg/dns"
)

// ttl is the lifetime of answers, in seconds: short, as addresses change
// when nodes move, and the resolver answers locally anyway.
const ttl = 5

// Registrar is where the table registers its zones: the node's resolver
// (network.Service).
type Registrar interface {
	AddDNSHandler(zone string, h dns.Handler)
	RemoveDNSHandler(zone string)
}

// Table answers DNS queries for node IDs. It is safe for concurrent use.
type Table struct {
	registrar Registrar

	mu sync.RWMutex
	// addresses maps the fully qualified, lower-case name of each node ID
	// to its address.
	addresses map[string]netip.Addr
}

// New returns a table without names, which registers its zones with r.
func New(r Registrar) *Table {
	return &Table{registrar: r, addresses: make(map[string]netip.Addr)}
}

// SetNodeAddresses replaces the table's names with the nodes of byID,
// which maps node IDs to their addresses. Invalid node IDs and addresses
// are ignored.
func (t *Table) SetNodeAddresses(byID map[string]netip.Addr) {
	next := make(map[string]netip.Addr, len(byID))
	for id, addr := range byID {
		name := dns.CanonicalName(id)
		if _, ok := dns.IsDomainName(name); !ok || dns.CountLabel(name) != 1 || !addr.IsValid() {
			continue
		}
		next[name] = addr.Unmap()
	}
	t.mu.Lock()
	prev := t.addresses
	t.addresses = next
	t.mu.Unlock()
	for name := range prev {
		if _, ok := next[name]; !ok {
			t.registrar.RemoveDNSHandler(name)
		}
	}
	for name := range next {
		if _, ok := prev[name]; !ok {
			t.registrar.AddDNSHandler(name, t)
		}
	}
}

// ServeDNS answers a query for a name in one of the table's zones.
func (t *Table) ServeDNS(w dns.ResponseWriter, r *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(r)
	m.Authoritative = true
	if len(r.Question) != 1 {
		m.Rcode = dns.RcodeFormatError
		w.WriteMsg(m)
		return
	}
	q := r.Question[0]
	name := strings.ToLower(q.Name)
	t.mu.RLock()
	addr, ok := t.addresses[name]
	t.mu.RUnlock()
	switch {
	case !ok:
		// A name below a node ID, or one that was removed while the
		// query was routed to it.
		m.Rcode = dns.RcodeNameError
	case q.Qclass != dns.ClassINET && q.Qclass != dns.ClassANY:
	case addr.Is4() && (q.Qtype == dns.TypeA || q.Qtype == dns.TypeANY):
		m.Answer = append(m.Answer, &dns.A{
			Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: ttl},
			A:   addr.AsSlice(),
		})
	case addr.Is6() && (q.Qtype == dns.TypeAAAA || q.Qtype == dns.TypeANY):
		m.Answer = append(m.Answer, &dns.AAAA{
			Hdr:  dns.RR_Header{Name: q.Name, Rrtype: dns.TypeAAAA, Class: dns.ClassINET, Ttl: ttl},
			AAAA: addr.AsSlice(),
		})
	}
	w.WriteMsg(m)
}
