package dhcp4c

import (
	"net"
	"strings"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

var (
	testHWAddr   = net.HardwareAddr{0x52, 0x54, 0x00, 0x12, 0x34, 0x56}
	testServer   = net.IPv4(10, 0, 0, 1).To4()
	testAddress  = net.IPv4(10, 0, 0, 42).To4()
	testSubnet   = net.CIDRMask(24, 32)
	testEpoch    = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	testLeaseFor = time.Hour
)

// newTestMachine returns a machine with predictable transaction IDs and no
// jitter.
func newTestMachine() *machine {
	var n byte
	newXID := func() dhcpv4.TransactionID {
		n++
		return dhcpv4.TransactionID{0, 0, 0, n}
	}
	options := []dhcpv4.Option{requestedOptions, dhcpv4.OptClassIdentifier("test-vendor")}
	return newMachine(testHWAddr, options, newXID, func() time.Duration { return 0 })
}

// reply builds a server's reply of type typ to req, granting testAddress for
// leaseFor (no lease time option if zero).
func reply(t *testing.T, req *dhcpv4.DHCPv4, typ dhcpv4.MessageType, server net.IP, leaseFor time.Duration, extra ...dhcpv4.Option) *dhcpv4.DHCPv4 {
	t.Helper()
	opts := []dhcpv4.Modifier{
		dhcpv4.WithMessageType(typ),
		dhcpv4.WithServerIP(server),
		dhcpv4.WithOption(dhcpv4.OptServerIdentifier(server)),
	}
	if typ != dhcpv4.MessageTypeNak {
		opts = append(opts,
			dhcpv4.WithYourIP(testAddress),
			dhcpv4.WithNetmask(testSubnet),
			dhcpv4.WithRouter(testServer))
	}
	if leaseFor > 0 {
		opts = append(opts, dhcpv4.WithOption(dhcpv4.OptIPAddressLeaseTime(leaseFor)))
	}
	for _, o := range extra {
		opts = append(opts, dhcpv4.WithOption(o))
	}
	msg, err := dhcpv4.NewReplyFromRequest(req, opts...)
	if err != nil {
		t.Fatalf("building %v: %v", typ, err)
	}
	return msg
}

// bind takes a fresh machine to stateBound at now, returning the lease.
func bind(t *testing.T, m *machine, now time.Time, leaseFor time.Duration, extra ...dhcpv4.Option) *Lease {
	t.Helper()
	discover := m.next(now)
	if err := m.handle(now, reply(t, discover.msg, dhcpv4.MessageTypeOffer, testServer, leaseFor, extra...)); err != nil {
		t.Fatalf("offer not accepted: %v", err)
	}
	request := m.next(now)
	if err := m.handle(now, reply(t, request.msg, dhcpv4.MessageTypeAck, testServer, leaseFor, extra...)); err != nil {
		t.Fatalf("ACK not accepted: %v", err)
	}
	if m.state != stateBound || m.lease == nil {
		t.Fatalf("state %v with lease %v after ACK, want bound", m.state, m.lease)
	}
	return m.lease
}

func TestMachineAcquires(t *testing.T) {
	m := newTestMachine()
	now := testEpoch

	discover := m.next(now)
	if got := discover.msg.MessageType(); got != dhcpv4.MessageTypeDiscover {
		t.Fatalf("first message is %v, want DISCOVER", got)
	}
	if discover.to != nil || discover.from != nil {
		t.Errorf("DISCOVER goes from %v to %v, want a broadcast from 0.0.0.0", discover.from, discover.to)
	}
	if got := discover.msg.ClassIdentifier(); got != "test-vendor" {
		t.Errorf("vendor class %q, want test-vendor", got)
	}
	if !discover.msg.IsOptionRequested(dhcpv4.OptionClasslessStaticRoute) || !discover.msg.IsOptionRequested(dhcpv4.OptionNTPServers) {
		t.Errorf("DISCOVER does not request classless routes and NTP servers: %v", discover.msg.ParameterRequestList())
	}

	now = now.Add(time.Second)
	if err := m.handle(now, reply(t, discover.msg, dhcpv4.MessageTypeOffer, testServer, testLeaseFor)); err != nil {
		t.Fatalf("offer not accepted: %v", err)
	}
	now = now.Add(time.Second)
	request := m.next(now)
	if got := request.msg.MessageType(); got != dhcpv4.MessageTypeRequest {
		t.Fatalf("message after the offer is %v, want REQUEST", got)
	}
	if request.msg.TransactionID != discover.msg.TransactionID {
		t.Errorf("REQUEST has transaction %v, want the DISCOVER's %v", request.msg.TransactionID, discover.msg.TransactionID)
	}
	if got := request.msg.RequestedIPAddress(); !got.Equal(testAddress) {
		t.Errorf("requested address %v, want the offered %v", got, testAddress)
	}
	if got := request.msg.ServerIdentifier(); !got.Equal(testServer) {
		t.Errorf("REQUEST names server %v, want %v", got, testServer)
	}
	if request.msg.NumSeconds != 2 {
		t.Errorf("REQUEST secs is %d, want 2 (since the DISCOVER)", request.msg.NumSeconds)
	}

	if err := m.handle(now, reply(t, request.msg, dhcpv4.MessageTypeAck, testServer, testLeaseFor)); err != nil {
		t.Fatalf("ACK not accepted: %v", err)
	}
	l := m.lease
	if l == nil {
		t.Fatal("no lease after ACK")
	}
	if got := l.Address().String(); got != "10.0.0.42/24" {
		t.Errorf("leased %s, want 10.0.0.42/24", got)
	}
	if !l.Start.Equal(now) || l.Duration != time.Hour || l.RenewAfter != 30*time.Minute || l.RebindAfter != 52*time.Minute+30*time.Second {
		t.Errorf("lease from %v for %v, T1 %v, T2 %v; want from %v for 1h, T1 30m, T2 52m30s",
			l.Start, l.Duration, l.RenewAfter, l.RebindAfter, now)
	}
	routes := l.Routes()
	if len(routes) != 1 || routes[0].Dest.String() != "0.0.0.0/0" || !routes[0].Router.Equal(testServer) {
		t.Errorf("routes %v, want a default route via %v", routes, testServer)
	}
	if bound := m.next(now); bound.msg != nil || !bound.until.Equal(l.RenewAt()) {
		t.Errorf("bound machine sends %v and waits until %v, want nothing until T1 %v", bound.msg, bound.until, l.RenewAt())
	}
}

// TestMachineLifecycle follows a lease through renewal, a failed renewal,
// rebinding and expiry.
func TestMachineLifecycle(t *testing.T) {
	m := newTestMachine()
	lease := bind(t, m, testEpoch, testLeaseFor)

	// T1: renew by unicast to the lease's server.
	now := lease.RenewAt()
	m.timeout(now)
	if m.state != stateRenewing {
		t.Fatalf("state %v at T1, want renewing", m.state)
	}
	renew := m.next(now)
	if !renew.to.Equal(testServer) || !renew.from.Equal(testAddress) {
		t.Errorf("renewal goes from %v to %v, want unicast from %v to %v", renew.from, renew.to, testAddress, testServer)
	}
	if !renew.msg.ClientIPAddr.Equal(testAddress) || renew.msg.RequestedIPAddress() != nil || renew.msg.ServerIdentifier() != nil {
		t.Errorf("renewal has ciaddr %v, requested address %v, server ID %v; want ciaddr %v and neither option",
			renew.msg.ClientIPAddr, renew.msg.RequestedIPAddress(), renew.msg.ServerIdentifier(), testAddress)
	}
	// Half of the 22.5 minutes to T2.
	if want := now.Add(11*time.Minute + 15*time.Second); !renew.until.Equal(want) {
		t.Errorf("renewal waits until %v, want %v", renew.until, want)
	}
	now = now.Add(time.Second)
	if err := m.handle(now, reply(t, renew.msg, dhcpv4.MessageTypeAck, testServer, testLeaseFor)); err != nil {
		t.Fatalf("renewal ACK not accepted: %v", err)
	}
	renewed := m.lease
	if m.state != stateBound || renewed == lease || !renewed.Start.Equal(renew.until.Add(-11*time.Minute-15*time.Second)) {
		t.Fatalf("after the renewal ACK: state %v, lease starting %v; want bound with a lease starting when the renewal was sent", m.state, renewed.Start)
	}

	// The next renewal goes unanswered: retransmissions until T2, with the
	// wait halving but not below a minute.
	now = renewed.RenewAt()
	m.timeout(now)
	var waits []time.Duration
	for m.state == stateRenewing {
		tr := m.next(now)
		if !tr.to.Equal(testServer) {
			t.Fatalf("renewal retransmission goes to %v, want %v", tr.to, testServer)
		}
		waits = append(waits, tr.until.Sub(now))
		now = tr.until
		m.timeout(now)
	}
	wantWaits := []time.Duration{675 * time.Second, 337500 * time.Millisecond, 168750 * time.Millisecond, 84375 * time.Millisecond, 60 * time.Second, 24375 * time.Millisecond}
	if !equalDurations(waits, wantWaits) {
		t.Errorf("renewal retransmission waits %v, want %v", waits, wantWaits)
	}
	if m.state != stateRebinding || !now.Equal(renewed.RebindAt()) {
		t.Fatalf("state %v at %v, want rebinding at T2 %v", m.state, now, renewed.RebindAt())
	}

	// Rebinding broadcasts from the leased address until the lease ends.
	for m.state == stateRebinding {
		tr := m.next(now)
		if tr.to != nil || !tr.from.Equal(testAddress) || !tr.msg.ClientIPAddr.Equal(testAddress) {
			t.Fatalf("rebinding request goes from %v to %v with ciaddr %v, want a broadcast from %v", tr.from, tr.to, tr.msg.ClientIPAddr, testAddress)
		}
		if tr.until.After(renewed.ExpiresAt()) {
			t.Fatalf("rebinding waits until %v, past the lease's end %v", tr.until, renewed.ExpiresAt())
		}
		now = tr.until
		m.timeout(now)
	}
	if m.state != stateDiscovering || m.lease != nil {
		t.Fatalf("state %v with lease %v after expiry, want discovering without a lease", m.state, m.lease)
	}
	if !now.Equal(renewed.ExpiresAt()) {
		t.Errorf("lease dropped at %v, want at its end %v", now, renewed.ExpiresAt())
	}
}

func TestMachineRebindingAccepted(t *testing.T) {
	m := newTestMachine()
	lease := bind(t, m, testEpoch, testLeaseFor)
	now := lease.RebindAt()
	m.timeout(now)
	if m.state != stateRebinding {
		t.Fatalf("state %v when timing out at T2 while bound, want rebinding", m.state)
	}
	tr := m.next(now)
	// Any server may extend the lease while rebinding.
	other := net.IPv4(10, 0, 0, 2).To4()
	if err := m.handle(now, reply(t, tr.msg, dhcpv4.MessageTypeAck, other, 2*time.Hour)); err != nil {
		t.Fatalf("ACK from another server while rebinding not accepted: %v", err)
	}
	if m.state != stateBound || !m.lease.ServerID().Equal(other) || m.lease.Duration != 2*time.Hour {
		t.Errorf("state %v, lease from %v for %v; want bound by %v for 2h", m.state, m.lease.ServerID(), m.lease.Duration, other)
	}
}

func TestMachineNAK(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, m *machine) *dhcpv4.DHCPv4
	}{
		{"requesting", func(t *testing.T, m *machine) *dhcpv4.DHCPv4 {
			discover := m.next(testEpoch)
			if err := m.handle(testEpoch, reply(t, discover.msg, dhcpv4.MessageTypeOffer, testServer, testLeaseFor)); err != nil {
				t.Fatal(err)
			}
			return m.next(testEpoch).msg
		}},
		{"renewing", func(t *testing.T, m *machine) *dhcpv4.DHCPv4 {
			l := bind(t, m, testEpoch, testLeaseFor)
			m.timeout(l.RenewAt())
			return m.next(l.RenewAt()).msg
		}},
		{"rebinding", func(t *testing.T, m *machine) *dhcpv4.DHCPv4 {
			l := bind(t, m, testEpoch, testLeaseFor)
			m.timeout(l.RebindAt())
			return m.next(l.RebindAt()).msg
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := newTestMachine()
			req := tc.setup(t, m)
			if err := m.handle(testEpoch, reply(t, req, dhcpv4.MessageTypeNak, testServer, 0)); err != nil {
				t.Fatalf("NAK not accepted: %v", err)
			}
			if m.state != stateDiscovering || m.lease != nil || m.offer != nil {
				t.Errorf("after NAK: state %v, lease %v, offer %v; want discovering afresh", m.state, m.lease, m.offer)
			}
			if next := m.next(testEpoch); next.msg.TransactionID == req.TransactionID {
				t.Errorf("discovery after NAK reuses transaction %v", req.TransactionID)
			}
		})
	}
}

func TestMachineRetransmission(t *testing.T) {
	m := newTestMachine()
	now := testEpoch
	var waits []time.Duration
	var xid dhcpv4.TransactionID
	for i := 0; i < 7; i++ {
		tr := m.next(now)
		if i == 0 {
			xid = tr.msg.TransactionID
		} else if tr.msg.TransactionID != xid {
			t.Errorf("retransmission %d has transaction %v, want %v", i, tr.msg.TransactionID, xid)
		}
		waits = append(waits, tr.until.Sub(now))
		now = tr.until
		m.timeout(now)
	}
	want := []time.Duration{4 * time.Second, 8 * time.Second, 16 * time.Second, 32 * time.Second, 64 * time.Second, 64 * time.Second, 64 * time.Second}
	if !equalDurations(waits, want) {
		t.Errorf("DISCOVER retransmission waits %v, want %v", waits, want)
	}

	// An unanswered REQUEST is sent requestAttempts times, then the client
	// discovers again.
	if err := m.handle(now, reply(t, m.next(now).msg, dhcpv4.MessageTypeOffer, testServer, testLeaseFor)); err != nil {
		t.Fatal(err)
	}
	requests := 0
	for m.state == stateRequesting {
		tr := m.next(now)
		requests++
		now = tr.until
		m.timeout(now)
	}
	if requests != requestAttempts || m.state != stateDiscovering {
		t.Errorf("sent %d REQUESTs, then %v; want %d, then discovering", requests, m.state, requestAttempts)
	}
}

func TestMachineIgnores(t *testing.T) {
	otherHW := net.HardwareAddr{0x52, 0x54, 0x00, 0, 0, 1}
	otherServer := net.IPv4(10, 0, 0, 9).To4()
	for _, tc := range []struct {
		name string
		// state is reached by bind (bound), or by an offer (requesting),
		// or not at all (discovering); renewing follows bind.
		state  state
		mangle func(t *testing.T, req *dhcpv4.DHCPv4) *dhcpv4.DHCPv4
		want   string
	}{
		{"other transaction", stateDiscovering, func(t *testing.T, req *dhcpv4.DHCPv4) *dhcpv4.DHCPv4 {
			r := reply(t, req, dhcpv4.MessageTypeOffer, testServer, testLeaseFor)
			r.TransactionID[0] ^= 0xff
			return r
		}, "another client"},
		{"other client", stateDiscovering, func(t *testing.T, req *dhcpv4.DHCPv4) *dhcpv4.DHCPv4 {
			r := reply(t, req, dhcpv4.MessageTypeOffer, testServer, testLeaseFor)
			r.ClientHWAddr = otherHW
			return r
		}, "another client"},
		{"request", stateDiscovering, func(t *testing.T, req *dhcpv4.DHCPv4) *dhcpv4.DHCPv4 {
			return req
		}, "another client"},
		{"ACK while discovering", stateDiscovering, func(t *testing.T, req *dhcpv4.DHCPv4) *dhcpv4.DHCPv4 {
			return reply(t, req, dhcpv4.MessageTypeAck, testServer, testLeaseFor)
		}, "unexpected ACK"},
		{"offer without server identifier", stateDiscovering, func(t *testing.T, req *dhcpv4.DHCPv4) *dhcpv4.DHCPv4 {
			r := reply(t, req, dhcpv4.MessageTypeOffer, testServer, testLeaseFor)
			r.Options.Del(dhcpv4.OptionServerIdentifier)
			return r
		}, "without server identifier"},
		{"offer of 0.0.0.0", stateDiscovering, func(t *testing.T, req *dhcpv4.DHCPv4) *dhcpv4.DHCPv4 {
			r := reply(t, req, dhcpv4.MessageTypeOffer, testServer, testLeaseFor)
			r.YourIPAddr = net.IPv4zero
			return r
		}, "unusable address"},
		{"ACK without lease time", stateRequesting, func(t *testing.T, req *dhcpv4.DHCPv4) *dhcpv4.DHCPv4 {
			return reply(t, req, dhcpv4.MessageTypeAck, testServer, 0)
		}, "without lease time"},
		{"ACK from another server while requesting", stateRequesting, func(t *testing.T, req *dhcpv4.DHCPv4) *dhcpv4.DHCPv4 {
			return reply(t, req, dhcpv4.MessageTypeAck, otherServer, testLeaseFor)
		}, "not the server whose offer"},
		{"ACK from another server while renewing", stateRenewing, func(t *testing.T, req *dhcpv4.DHCPv4) *dhcpv4.DHCPv4 {
			return reply(t, req, dhcpv4.MessageTypeAck, otherServer, testLeaseFor)
		}, "not the lease's server"},
		{"offer while renewing", stateRenewing, func(t *testing.T, req *dhcpv4.DHCPv4) *dhcpv4.DHCPv4 {
			return reply(t, req, dhcpv4.MessageTypeOffer, testServer, testLeaseFor)
		}, "unexpected OFFER"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := newTestMachine()
			now := testEpoch
			switch tc.state {
			case stateRequesting:
				discover := m.next(now)
				if err := m.handle(now, reply(t, discover.msg, dhcpv4.MessageTypeOffer, testServer, testLeaseFor)); err != nil {
					t.Fatal(err)
				}
			case stateRenewing:
				now = bind(t, m, now, testLeaseFor).RenewAt()
				m.timeout(now)
			}
			req := m.next(now).msg
			before, lease := m.state, m.lease
			err := m.handle(now, tc.mangle(t, req))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("handle returned %v, want an error containing %q", err, tc.want)
			}
			if m.state != before || m.lease != lease {
				t.Errorf("ignored message moved the machine from %v to %v", before, m.state)
			}
		})
	}
}

func TestLeaseTimes(t *testing.T) {
	for _, tc := range []struct {
		name       string
		t1, t2     time.Duration
		wantT1, T2 time.Duration
	}{
		{"defaults", 0, 0, 50 * time.Second, 87500 * time.Millisecond},
		{"server's", 20 * time.Second, 60 * time.Second, 20 * time.Second, 60 * time.Second},
		{"T1 after T2", 80 * time.Second, 60 * time.Second, 50 * time.Second, 87500 * time.Millisecond},
		{"T2 after lease end", 20 * time.Second, 200 * time.Second, 50 * time.Second, 87500 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var extra []dhcpv4.Option
			if tc.t1 > 0 {
				extra = append(extra, dhcpv4.OptRenewTimeValue(tc.t1), dhcpv4.OptRebindingTimeValue(tc.t2))
			}
			l := bind(t, newTestMachine(), testEpoch, 100*time.Second, extra...)
			if l.RenewAfter != tc.wantT1 || l.RebindAfter != tc.T2 {
				t.Errorf("T1 %v, T2 %v; want %v, %v", l.RenewAfter, l.RebindAfter, tc.wantT1, tc.T2)
			}
		})
	}
}

func TestLeaseClasslessRoutes(t *testing.T) {
	_, dest, _ := net.ParseCIDR("192.0.2.0/24")
	routes := dhcpv4.OptClasslessStaticRoute(
		&dhcpv4.Route{Dest: dest, Router: net.IPv4(10, 0, 0, 254).To4()},
		&dhcpv4.Route{Dest: &net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)}, Router: net.IPv4(10, 0, 0, 253).To4()},
	)
	l := bind(t, newTestMachine(), testEpoch, testLeaseFor, routes)
	got := l.Routes()
	// The router option (testServer) is ignored in favour of option 121.
	if len(got) != 2 || got[0].Dest.String() != "192.0.2.0/24" || !got[0].Router.Equal(net.IPv4(10, 0, 0, 254)) ||
		got[1].Dest.String() != "0.0.0.0/0" || !got[1].Router.Equal(net.IPv4(10, 0, 0, 253)) {
		t.Errorf("routes %v, want exactly those of option 121", got)
	}
}

func equalDurations(a, b []time.Duration) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
