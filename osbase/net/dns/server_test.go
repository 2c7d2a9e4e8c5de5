package dns

import (
	"context"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/miekg/dns"

	"metropolis.dev/osbase/supervisor"
)

// answerWith returns a handler answering every A query with ip.
func answerWith(ip string) dns.Handler {
	return dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg).SetReply(r)
		m.Answer = []dns.RR{&dns.A{
			Hdr: dns.RR_Header{Name: r.Question[0].Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 5},
			A:   net.ParseIP(ip),
		}}
		w.WriteMsg(m)
	})
}

// freeLoopbackPort returns a port on 127.0.0.1 free for both UDP and TCP a
// moment ago, as the server binds its addresses itself.
func freeLoopbackPort(t *testing.T) netip.AddrPort {
	t.Helper()
	for range 10 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().(*net.TCPAddr).AddrPort()
		pc, err := net.ListenPacket("udp", addr.String())
		l.Close()
		if err == nil {
			pc.Close()
			return addr
		}
	}
	t.Fatal("no port free for both UDP and TCP")
	return netip.AddrPort{}
}

func TestServer(t *testing.T) {
	addr := freeLoopbackPort(t)
	s := NewServer()
	s.AddHandler(".", answerWith("192.0.2.1"))
	s.AddHandler("cluster.internal", answerWith("10.0.0.1"))
	s.AddHandler("special.cluster.internal.", answerWith("10.0.0.2"))

	// The server binds its addresses as it starts, so the queries below
	// poll until it answers.
	supervisor.TestHarness(t, func(ctx context.Context) error {
		return s.Serve(ctx, addr)
	})

	ask := func(transport, name string) *dns.Msg {
		t.Helper()
		c := &dns.Client{Net: transport, Timeout: time.Second}
		q := new(dns.Msg).SetQuestion(name, dns.TypeA)
		deadline := time.Now().Add(10 * time.Second)
		for {
			resp, _, err := c.Exchange(q, addr.String())
			if err == nil {
				return resp
			}
			if time.Now().After(deadline) {
				t.Fatalf("querying %s over %s: %v", name, transport, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	answer := func(resp *dns.Msg) string {
		if resp.Rcode != dns.RcodeSuccess || len(resp.Answer) != 1 {
			return dns.RcodeToString[resp.Rcode]
		}
		return resp.Answer[0].(*dns.A).A.String()
	}

	for _, tc := range []struct {
		name, want string
	}{
		{"example.com.", "192.0.2.1"},
		{"cluster.internal.", "10.0.0.1"},
		{"node1.cluster.internal.", "10.0.0.1"},
		{"NODE1.Cluster.Internal.", "10.0.0.1"},
		{"a.special.cluster.internal.", "10.0.0.2"},
		{"notcluster.internal.", "192.0.2.1"},
	} {
		for _, transport := range []string{"udp", "tcp"} {
			if got := answer(ask(transport, tc.name)); got != tc.want {
				t.Errorf("%s over %s answered %s, want %s", tc.name, transport, got, tc.want)
			}
		}
	}

	s.RemoveHandler("special.cluster.internal")
	if got := answer(ask("udp", "a.special.cluster.internal.")); got != "10.0.0.1" {
		t.Errorf("after removing its zone's handler, a name is answered with %s, want the parent zone's 10.0.0.1", got)
	}
	s.RemoveHandler(".")
	if got := answer(ask("udp", "example.com.")); got != "REFUSED" {
		t.Errorf("a name in no zone is answered with %s, want REFUSED", got)
	}
}

func TestServerListenError(t *testing.T) {
	s := NewServer()
	errs := make(chan error, 1)
	supervisor.TestHarness(t, func(ctx context.Context) error {
		// An address the machine does not have.
		errs <- s.Serve(ctx, netip.MustParseAddrPort("192.0.2.1:53"))
		supervisor.Signal(ctx, supervisor.SignalDone)
		return nil
	})
	if err := <-errs; err == nil {
		t.Error("Run on an address not on the machine succeeded")
	}
}

func TestWriteResolvConf(t *testing.T) {
	path := filepath.Join(t.TempDir(), "resolv.conf")
	if err := os.WriteFile(path, []byte("nameserver 192.0.2.53\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := WriteResolvConf(path, netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("::1")); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if want := "nameserver 127.0.0.1\nnameserver ::1\n"; string(got) != want {
		t.Errorf("resolv.conf is %q, want %q", got, want)
	}
	if err := WriteResolvConf(path); err == nil {
		t.Error("writing a resolv.conf without servers succeeded")
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Errorf("directory holds %d files, want only resolv.conf: temporary files left behind", len(entries))
	}
}
