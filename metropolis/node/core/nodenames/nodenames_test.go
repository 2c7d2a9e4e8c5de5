package nodenames

import (
	"context"
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/miekg/dns"

	osdns "metropolis.dev/osbase/net/dns"
	"metropolis.dev/osbase/supervisor"
)

// resolver is the node's real resolver, serving on a loopback port, with a
// root zone that answers every other name with an address of its own, as
// the forwarder would.
type resolver struct {
	*osdns.Server
	addr string
}

// forwarded is the address the stand-in forwarder answers with.
var forwarded = netip.MustParseAddr("192.0.2.99")

func startResolver(t *testing.T) *resolver {
	t.Helper()
	srv := osdns.NewServer()
	srv.AddHandler(".", dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: r.Question[0].Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 1}, A: forwarded.AsSlice()})
		w.WriteMsg(m)
	}))
	// Find a free port for both UDP and TCP.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := netip.MustParseAddrPort(l.Addr().String())
	l.Close()
	supervisor.TestHarness(t, func(ctx context.Context) error {
		return srv.Serve(ctx, addr)
	})
	r := &resolver{Server: srv, addr: addr.String()}
	// The server binds its addresses as it starts: poll until it answers.
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, _, err := r.query(t, "probe.", dns.TypeA); err == nil {
			return r
		}
		if time.Now().After(deadline) {
			t.Fatal("the resolver did not start answering")
		}
	}
}

func (r *resolver) AddDNSHandler(zone string, h dns.Handler) { r.AddHandler(zone, h) }
func (r *resolver) RemoveDNSHandler(zone string)             { r.RemoveHandler(zone) }

// query asks the resolver over UDP and returns the response code and the
// answer's addresses.
func (r *resolver) query(t *testing.T, name string, qtype uint16) (int, []string, error) {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	c := &dns.Client{Timeout: time.Second}
	res, _, err := c.Exchange(m, r.addr)
	if err != nil {
		return 0, nil, err
	}
	var addrs []string
	for _, rr := range res.Answer {
		switch rr := rr.(type) {
		case *dns.A:
			addrs = append(addrs, rr.A.String())
		case *dns.AAAA:
			addrs = append(addrs, rr.AAAA.String())
		}
	}
	return res.Rcode, addrs, nil
}

func TestNodeNames(t *testing.T) {
	r := startResolver(t)
	table := New(r)
	const a, b = "metropolis-0123456789abcdef0123456789abcdef", "metropolis-fedcba9876543210fedcba9876543210"
	table.SetNodeAddresses(map[string]netip.Addr{
		a:               netip.MustParseAddr("10.1.0.2"),
		b:               netip.MustParseAddr("10.1.0.3"),
		"not a name!":   netip.MustParseAddr("10.1.0.9"),
		"two.labels":    netip.MustParseAddr("10.1.0.9"),
		"no-address-id": {},
	})

	for _, tc := range []struct {
		name      string
		query     string
		qtype     uint16
		wantRcode int
		want      []string
	}{
		{"node A", a + ".", dns.TypeA, dns.RcodeSuccess, []string{"10.1.0.2"}},
		{"other node A", b + ".", dns.TypeA, dns.RcodeSuccess, []string{"10.1.0.3"}},
		{"case-insensitive", "METROPOLIS-0123456789ABCDEF0123456789ABCDEF.", dns.TypeA, dns.RcodeSuccess, []string{"10.1.0.2"}},
		{"AAAA of a v4 node", a + ".", dns.TypeAAAA, dns.RcodeSuccess, nil},
		{"below a node ID", "x." + a + ".", dns.TypeA, dns.RcodeNameError, nil},
		{"unknown node forwarded", "metropolis-00000000000000000000000000000000.", dns.TypeA, dns.RcodeSuccess, []string{forwarded.String()}},
		{"invalid ID ignored", "two.labels.", dns.TypeA, dns.RcodeSuccess, []string{forwarded.String()}},
		{"ID without address ignored", "no-address-id.", dns.TypeA, dns.RcodeSuccess, []string{forwarded.String()}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rcode, got, err := r.query(t, tc.query, tc.qtype)
			if err != nil {
				t.Fatal(err)
			}
			if rcode != tc.wantRcode || !slices.Equal(got, tc.want) {
				t.Errorf("got %s %v, want %s %v", dns.RcodeToString[rcode], got, dns.RcodeToString[tc.wantRcode], tc.want)
			}
		})
	}

	// A node that moves and one that is deleted.
	table.SetNodeAddresses(map[string]netip.Addr{a: netip.MustParseAddr("10.1.0.7")})
	if _, got, err := r.query(t, a+".", dns.TypeA); err != nil || !slices.Equal(got, []string{"10.1.0.7"}) {
		t.Errorf("after the node moved: got %v, %v; want 10.1.0.7", got, err)
	}
	if _, got, err := r.query(t, b+".", dns.TypeA); err != nil || !slices.Equal(got, []string{forwarded.String()}) {
		t.Errorf("after the node was deleted: got %v, %v; want the forwarder's answer", got, err)
	}
}
