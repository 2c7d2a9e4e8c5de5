package forward

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// upstream is a recursive resolver for tests, serving a few fixed names over
// UDP and TCP on loopback and counting the queries it gets.
type upstream struct {
	addr netip.AddrPort

	mu      sync.Mutex
	queries map[string]int // by "name/transport"
}

func (u *upstream) count(name, transport string) int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.queries[name+"/"+transport]
}

// listenUDPAndTCP listens on one loopback port for both UDP and TCP, as a
// DNS server does. The kernel picks a free UDP port, which may be taken for
// TCP, so a few ports are tried.
func listenUDPAndTCP(t *testing.T) (net.PacketConn, net.Listener, int) {
	t.Helper()
	var lastErr error
	for range 20 {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := pc.LocalAddr().(*net.UDPAddr).Port
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			return pc, l, port
		}
		pc.Close()
		lastErr = err
	}
	t.Fatalf("no loopback port free for both UDP and TCP: %v", lastErr)
	return nil, nil, 0
}

func startUpstream(t *testing.T) *upstream {
	t.Helper()
	u := &upstream{queries: make(map[string]int)}
	pc, l, port := listenUDPAndTCP(t)
	u.addr = netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(port))
	for _, srv := range []*dns.Server{
		{PacketConn: pc, Handler: dns.HandlerFunc(u.serve)},
		{Listener: l, Handler: dns.HandlerFunc(u.serve)},
	} {
		started := make(chan struct{})
		srv.NotifyStartedFunc = func() { close(started) }
		go srv.ActivateAndServe()
		<-started
		t.Cleanup(func() { srv.Shutdown() })
	}
	return u
}

func (u *upstream) serve(w dns.ResponseWriter, r *dns.Msg) {
	q := r.Question[0]
	name := strings.ToLower(q.Name)
	transport := w.LocalAddr().Network()
	u.mu.Lock()
	u.queries[name+"/"+transport]++
	u.mu.Unlock()

	m := new(dns.Msg).SetReply(r)
	m.RecursionAvailable = true
	a := func(ip string, ttl uint32) dns.RR {
		return &dns.A{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: ttl}, A: net.ParseIP(ip)}
	}
	switch name {
	case "example.com.":
		m.Answer = []dns.RR{a("192.0.2.1", 60)}
	case "big.example.":
		// Too big for 512 bytes: truncated over UDP, as a real server
		// would, whatever the EDNS size.
		if transport == "udp" {
			m.Truncated = true
			break
		}
		for i := range 60 {
			m.Answer = append(m.Answer, a(fmt.Sprintf("192.0.2.%d", i+1), 300))
		}
	case "nx.example.":
		m.Rcode = dns.RcodeNameError
		m.Ns = []dns.RR{&dns.SOA{
			Hdr: dns.RR_Header{Name: "example.", Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: 3600},
			Ns:  "ns.example.", Mbox: "hostmaster.example.", Serial: 1, Refresh: 3600, Retry: 600, Expire: 86400, Minttl: 30,
		}}
	default:
		m.Rcode = dns.RcodeServerFailure
	}
	w.WriteMsg(m)
}

// fakeClock is the forwarder cache's clock in tests.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// serve runs f on loopback and returns its address.
func serve(t *testing.T, f *Forwarder) string {
	t.Helper()
	pc, l, _ := listenUDPAndTCP(t)
	for _, srv := range []*dns.Server{{PacketConn: pc, Handler: f}, {Listener: l, Handler: f}} {
		started := make(chan struct{})
		srv.NotifyStartedFunc = func() { close(started) }
		go srv.ActivateAndServe()
		<-started
		t.Cleanup(func() { srv.Shutdown() })
	}
	return pc.LocalAddr().String()
}

func newTestForwarder(t *testing.T, upstreams ...netip.AddrPort) (*Forwarder, *fakeClock, string) {
	clock := &fakeClock{now: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)}
	f := New(Config{Timeout: time.Second})
	f.now = clock.Now
	f.SetUpstreams(upstreams)
	return f, clock, serve(t, f)
}

func query(t *testing.T, server, transport, name string, edns bool) *dns.Msg {
	t.Helper()
	q := new(dns.Msg).SetQuestion(name, dns.TypeA)
	if edns {
		q.SetEdns0(1232, false)
	}
	c := &dns.Client{Net: transport, Timeout: 5 * time.Second}
	resp, _, err := c.Exchange(q, server)
	if err != nil {
		t.Fatalf("querying %s over %s: %v", name, transport, err)
	}
	return resp
}

func TestForwardAndCache(t *testing.T) {
	up := startUpstream(t)
	_, clock, server := newTestForwarder(t, up.addr)

	resp := query(t, server, "udp", "example.com.", false)
	if resp.Rcode != dns.RcodeSuccess || len(resp.Answer) != 1 || resp.Answer[0].(*dns.A).A.String() != "192.0.2.1" {
		t.Fatalf("answer %v, want example.com A 192.0.2.1", resp)
	}
	if resp.IsEdns0() != nil {
		t.Errorf("reply to a query without EDNS has an OPT record")
	}

	// A second query, even spelt differently, is answered from the cache,
	// with the TTL counted down and the question as asked.
	clock.Advance(10 * time.Second)
	resp = query(t, server, "udp", "EXAMPLE.com.", false)
	if n := up.count("example.com.", "udp"); n != 1 {
		t.Errorf("upstream asked %d times, want once", n)
	}
	if len(resp.Answer) != 1 || resp.Answer[0].Header().Ttl != 50 {
		t.Errorf("cached answer %v, want TTL 50", resp.Answer)
	}
	if resp.Question[0].Name != "EXAMPLE.com." {
		t.Errorf("cached answer's question %q, want the query's EXAMPLE.com.", resp.Question[0].Name)
	}

	// Once the TTL ran out, upstream is asked again.
	clock.Advance(51 * time.Second)
	query(t, server, "udp", "example.com.", false)
	if n := up.count("example.com.", "udp"); n != 2 {
		t.Errorf("upstream asked %d times after the TTL ran out, want twice", n)
	}
}

func TestTCPFallback(t *testing.T) {
	up := startUpstream(t)
	_, _, server := newTestForwarder(t, up.addr)

	resp := query(t, server, "tcp", "big.example.", false)
	if resp.Truncated || len(resp.Answer) != 60 {
		t.Errorf("over TCP: truncated %v with %d answers, want all 60", resp.Truncated, len(resp.Answer))
	}
	if up.count("big.example.", "udp") != 1 || up.count("big.example.", "tcp") != 1 {
		t.Errorf("upstream asked %d times over UDP and %d over TCP, want once each",
			up.count("big.example.", "udp"), up.count("big.example.", "tcp"))
	}

	// A UDP client without EDNS gets what fits 512 bytes, truncated, and
	// the cached answer in full when it retries over TCP.
	resp = query(t, server, "udp", "big.example.", false)
	if !resp.Truncated || len(resp.Answer) >= 60 {
		t.Errorf("over UDP: truncated %v with %d answers, want a truncated answer", resp.Truncated, len(resp.Answer))
	}
	if n := up.count("big.example.", "tcp"); n != 1 {
		t.Errorf("upstream asked over TCP %d times, want once: the answer should come from the cache", n)
	}
	// With EDNS, 1232 bytes hold all of it.
	resp = query(t, server, "udp", "big.example.", true)
	if resp.Truncated || len(resp.Answer) != 60 {
		t.Errorf("over UDP with EDNS: truncated %v with %d answers, want all 60", resp.Truncated, len(resp.Answer))
	}
}

func TestNegativeCache(t *testing.T) {
	up := startUpstream(t)
	_, clock, server := newTestForwarder(t, up.addr)

	for range 2 {
		if resp := query(t, server, "udp", "nx.example.", false); resp.Rcode != dns.RcodeNameError {
			t.Fatalf("rcode %v, want NXDOMAIN", dns.RcodeToString[resp.Rcode])
		}
	}
	if n := up.count("nx.example.", "udp"); n != 1 {
		t.Errorf("upstream asked %d times, want once", n)
	}
	// The SOA's minimum of 30 s bounds the negative answer's life.
	clock.Advance(30 * time.Second)
	query(t, server, "udp", "nx.example.", false)
	if n := up.count("nx.example.", "udp"); n != 2 {
		t.Errorf("upstream asked %d times after 30s, want twice", n)
	}

	// Failures are not cached.
	for range 2 {
		if resp := query(t, server, "udp", "fail.example.", false); resp.Rcode != dns.RcodeServerFailure {
			t.Fatalf("rcode %v, want SERVFAIL", dns.RcodeToString[resp.Rcode])
		}
	}
	if n := up.count("fail.example.", "udp"); n != 2 {
		t.Errorf("upstream asked %d times for a failing name, want twice", n)
	}
}

// extendedError returns the extended DNS error of resp, if any.
func extendedError(resp *dns.Msg) *dns.EDNS0_EDE {
	if opt := resp.IsEdns0(); opt != nil {
		for _, o := range opt.Option {
			if ede, ok := o.(*dns.EDNS0_EDE); ok {
				return ede
			}
		}
	}
	return nil
}

func TestFailures(t *testing.T) {
	// A port nobody listens on: queries fail at once with ICMP port
	// unreachable, or time out.
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := pc.LocalAddr().(*net.UDPAddr).AddrPort()
	pc.Close()

	t.Run("no upstream", func(t *testing.T) {
		_, _, server := newTestForwarder(t)
		resp := query(t, server, "udp", "example.com.", true)
		ede := extendedError(resp)
		if resp.Rcode != dns.RcodeServerFailure || ede == nil || ede.InfoCode != dns.ExtendedErrorCodeNotReady || !strings.Contains(ede.ExtraText, "no upstream") {
			t.Errorf("got %v, want SERVFAIL with an extended error saying there is no upstream", resp)
		}
		if resp := query(t, server, "udp", "example.com.", false); resp.Rcode != dns.RcodeServerFailure || resp.IsEdns0() != nil {
			t.Errorf("without EDNS: got %v, want a plain SERVFAIL", resp)
		}
	})
	t.Run("failover", func(t *testing.T) {
		up := startUpstream(t)
		_, _, server := newTestForwarder(t, dead, up.addr)
		if resp := query(t, server, "udp", "example.com.", false); resp.Rcode != dns.RcodeSuccess || len(resp.Answer) != 1 {
			t.Errorf("got %v, want the second upstream's answer", resp)
		}
	})
	t.Run("all fail", func(t *testing.T) {
		_, _, server := newTestForwarder(t, dead)
		resp := query(t, server, "udp", "example.com.", true)
		ede := extendedError(resp)
		if resp.Rcode != dns.RcodeServerFailure || ede == nil || ede.InfoCode != dns.ExtendedErrorCodeNetworkError || !strings.Contains(ede.ExtraText, dead.String()) {
			t.Errorf("got %v, want SERVFAIL with an extended error naming %v", resp, dead)
		}
	})
	t.Run("not a query", func(t *testing.T) {
		_, _, server := newTestForwarder(t)
		q := new(dns.Msg).SetNotify("example.com.")
		resp, _, err := new(dns.Client).Exchange(q, server)
		if err != nil {
			t.Fatal(err)
		}
		if resp.Rcode != dns.RcodeNotImplemented {
			t.Errorf("NOTIFY answered with %v, want NOTIMP", dns.RcodeToString[resp.Rcode])
		}
	})
}

func TestSetUpstreamsFlushesCache(t *testing.T) {
	up := startUpstream(t)
	f, _, server := newTestForwarder(t, up.addr)
	query(t, server, "udp", "example.com.", false)
	f.SetUpstreams([]netip.AddrPort{up.addr})
	query(t, server, "udp", "example.com.", false)
	if n := up.count("example.com.", "udp"); n != 1 {
		t.Errorf("upstream asked %d times, want once: the same upstreams keep the cache", n)
	}
	other := startUpstream(t)
	f.SetUpstreams([]netip.AddrPort{other.addr})
	query(t, server, "udp", "example.com.", false)
	if n := other.count("example.com.", "udp"); n != 1 {
		t.Errorf("new upstream asked %d times, want once", n)
	}
}

func TestCacheBounded(t *testing.T) {
	c := newCache(2)
	now := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	msgFor := func(name string) (cacheKey, *dns.Msg) {
		q := new(dns.Msg).SetQuestion(name, dns.TypeA)
		m := new(dns.Msg).SetReply(q)
		m.Answer = []dns.RR{&dns.A{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60}, A: net.IPv4(192, 0, 2, 1)}}
		return keyFor(q), m
	}
	ka, a := msgFor("a.example.")
	kb, b := msgFor("b.example.")
	kc, cc := msgFor("c.example.")
	c.put(ka, a, now)
	c.put(kb, b, now)
	c.get(ka, now) // a is now used more recently than b
	c.put(kc, cc, now)
	if c.len() != 2 {
		t.Errorf("cache holds %d answers, want its size 2", c.len())
	}
	if c.get(kb, now) != nil {
		t.Errorf("least recently used answer b still cached")
	}
	if c.get(ka, now) == nil || c.get(kc, now) == nil {
		t.Errorf("recently used answers a and c not both cached")
	}
}

func TestCacheTTL(t *testing.T) {
	rr := func(ttl uint32) dns.RR {
		return &dns.A{Hdr: dns.RR_Header{Name: "x.", Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: ttl}, A: net.IPv4(192, 0, 2, 1)}
	}
	soa := &dns.SOA{Hdr: dns.RR_Header{Name: "x.", Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: 100}, Minttl: 20}
	for _, tc := range []struct {
		name string
		msg  dns.Msg
		want time.Duration
	}{
		{"lowest TTL", dns.Msg{Answer: []dns.RR{rr(300), rr(60)}, Extra: []dns.RR{rr(120)}}, 60 * time.Second},
		{"capped", dns.Msg{Answer: []dns.RR{rr(86400)}}, maxCacheTTL},
		{"zero TTL", dns.Msg{Answer: []dns.RR{rr(0)}}, 0},
		{"NXDOMAIN with SOA", dns.Msg{MsgHdr: dns.MsgHdr{Rcode: dns.RcodeNameError}, Ns: []dns.RR{soa}}, 20 * time.Second},
		{"NODATA with SOA", dns.Msg{Ns: []dns.RR{soa}}, 20 * time.Second},
		{"NXDOMAIN without SOA", dns.Msg{MsgHdr: dns.MsgHdr{Rcode: dns.RcodeNameError}}, 0},
		{"SERVFAIL", dns.Msg{MsgHdr: dns.MsgHdr{Rcode: dns.RcodeServerFailure}, Ns: []dns.RR{soa}}, 0},
		{"truncated", dns.Msg{MsgHdr: dns.MsgHdr{Truncated: true}, Answer: []dns.RR{rr(60)}}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := cacheTTL(&tc.msg); got != tc.want {
				t.Errorf("cacheTTL = %v, want %v", got, tc.want)
			}
		})
	}
}
