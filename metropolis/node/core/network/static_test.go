package network

import (
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"metropolis.dev/osbase/net/netnstest"
	netpb "metropolis.dev/osbase/net/proto"
	"metropolis.dev/osbase/supervisor"
	"metropolis.dev/osbase/test/ktest"
)

func device(name, mac string, opts ...func(*netpb.Interface)) *netpb.Interface {
	i := &netpb.Interface{Name: name, Type: &netpb.Interface_Device{Device: &netpb.Device{HardwareAddress: mac}}}
	for _, o := range opts {
		o(i)
	}
	return i
}

func TestValidateStaticConfig(t *testing.T) {
	mac1, mac2 := "02:00:00:00:00:01", "02:00:00:00:00:02"
	bond := func(name string, mode netpb.Bond_Mode, members ...string) *netpb.Interface {
		return &netpb.Interface{Name: name, Type: &netpb.Interface_Bond{Bond: &netpb.Bond{MemberInterface: members, Mode: mode}}}
	}
	vlan := func(name, parent string, id uint32) *netpb.Interface {
		return &netpb.Interface{Name: name, Type: &netpb.Interface_Vlan{Vlan: &netpb.VLAN{Parent: parent, Id: id}}}
	}
	withAddress := func(a string) func(*netpb.Interface) {
		return func(i *netpb.Interface) { i.Address = append(i.Address, a) }
	}
	withRoute := func(dst, gw string) func(*netpb.Interface) {
		return func(i *netpb.Interface) { i.Route = append(i.Route, &netpb.Route{Destination: dst, Gateway: gw}) }
	}
	for _, tc := range []struct {
		name string
		cfg  *netpb.Net
		want string // empty: valid
	}{
		{"empty", &netpb.Net{}, ""},
		{"full", &netpb.Net{
			Interface: []*netpb.Interface{
				vlan("v10", "bond0", 10),
				bond("bond0", netpb.Bond_MODE_LACP, "a", "b"),
				device("a", mac1), device("b", mac2),
				device("c", "02:00:00:00:00:03", withAddress("10.0.0.2/24"), withAddress("2001:db8::2/64"),
					withRoute("0.0.0.0/0", "10.0.0.1"), withRoute("::/0", "fe80::1")),
			},
			Nameservers: &netpb.Nameservers{Server: []string{"10.0.0.53", "2001:db8::53"}},
			NtpServers:  []string{"10.0.0.123", "ntp.example.com"},
		}, ""},
		{"no name", &netpb.Net{Interface: []*netpb.Interface{device("", mac1)}}, "interface 0: no name"},
		{"long name", &netpb.Net{Interface: []*netpb.Interface{device("averyveryverylongname", mac1)}}, "longer than 15"},
		{"slash in name", &netpb.Net{Interface: []*netpb.Interface{device("a/b", mac1)}}, "contains '/'"},
		{"duplicate name", &netpb.Net{Interface: []*netpb.Interface{device("a", mac1), device("a", mac2)}}, `"a": defined twice`},
		{"no type", &netpb.Net{Interface: []*netpb.Interface{{Name: "a"}}}, "neither a device"},
		{"bad MAC", &netpb.Net{Interface: []*netpb.Interface{device("a", "02:00:00")}}, "not an Ethernet MAC"},
		{"duplicate MAC", &netpb.Net{Interface: []*netpb.Interface{device("a", mac1), device("b", mac1)}}, "both match hardware address"},
		{"bad address", &netpb.Net{Interface: []*netpb.Interface{device("a", mac1, withAddress("10.0.0.2"))}}, `address "10.0.0.2" is not in CIDR`},
		{"route host bits", &netpb.Net{Interface: []*netpb.Interface{device("a", mac1, withRoute("10.0.0.1/24", ""))}}, "did you mean 10.0.0.0/24"},
		{"route gateway family", &netpb.Net{Interface: []*netpb.Interface{device("a", mac1, withRoute("0.0.0.0/0", "fe80::1"))}}, "another address family"},
		{"bad gateway", &netpb.Net{Interface: []*netpb.Interface{device("a", mac1, withRoute("0.0.0.0/0", "gw"))}}, `gateway "gw"`},
		{"bond without members", &netpb.Net{Interface: []*netpb.Interface{bond("b", netpb.Bond_MODE_LACP)}}, "without members"},
		{"bond mode", &netpb.Net{Interface: []*netpb.Interface{device("a", mac1), bond("b", netpb.Bond_MODE_INVALID, "a")}}, "MODE_INVALID is not supported"},
		{"bond of unknown", &netpb.Net{Interface: []*netpb.Interface{bond("b", netpb.Bond_MODE_LACP, "x")}}, `member "x" is not defined`},
		{"bond of bond", &netpb.Net{Interface: []*netpb.Interface{device("a", mac1), bond("b", netpb.Bond_MODE_LACP, "a"), bond("c", netpb.Bond_MODE_LACP, "b")}}, `member "b" is not a device`},
		{"member twice", &netpb.Net{Interface: []*netpb.Interface{device("a", mac1), bond("b", netpb.Bond_MODE_LACP, "a"), bond("c", netpb.Bond_MODE_LACP, "a")}}, "already a member"},
		{"member with address", &netpb.Net{Interface: []*netpb.Interface{device("a", mac1, withAddress("10.0.0.2/24")), bond("b", netpb.Bond_MODE_LACP, "a")}}, "addresses, routes or DHCP of its own"},
		{"VLAN ID", &netpb.Net{Interface: []*netpb.Interface{device("a", mac1), vlan("v", "a", 4095)}}, "not within 1-4094"},
		{"VLAN parent", &netpb.Net{Interface: []*netpb.Interface{vlan("v", "x", 5)}}, `parent "x" is not defined`},
		{"VLAN on VLAN", &netpb.Net{Interface: []*netpb.Interface{device("a", mac1), vlan("v", "a", 5), vlan("w", "v", 6)}}, "is a VLAN itself"},
		{"VLAN on member", &netpb.Net{Interface: []*netpb.Interface{device("a", mac1), bond("b", netpb.Bond_MODE_LACP, "a"), vlan("v", "a", 5)}}, "is a member of bond"},
		{"duplicate VLAN", &netpb.Net{Interface: []*netpb.Interface{device("a", mac1), vlan("v", "a", 5), vlan("w", "a", 5)}}, "both have ID 5"},
		{"bad nameserver", &netpb.Net{Nameservers: &netpb.Nameservers{Server: []string{"dns.example.com"}}}, "not an IP address"},
		{"bad NTP server", &netpb.Net{NtpServers: []string{"ntp example"}}, "neither an IP address nor a host name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := ValidateStaticConfig(tc.cfg)
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("valid configuration rejected: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("got error %v, want one containing %q", err, tc.want)
			}
		})
	}

	// Interfaces are set up devices first, then bonds, then VLANs.
	sc, err := parseStaticConfig(&netpb.Net{Interface: []*netpb.Interface{
		vlan("v10", "bond0", 10), bond("bond0", netpb.Bond_MODE_LACP, "a"), device("a", mac1), device("b", mac2),
	}})
	if err != nil {
		t.Fatal(err)
	}
	var order []string
	for _, si := range sc.interfaces {
		order = append(order, si.name)
	}
	if want := []string{"a", "b", "bond0", "v10"}; !slices.Equal(order, want) {
		t.Errorf("set-up order %v, want %v", order, want)
	}
}

func addrStrings(t *testing.T, link netlink.Link, family int) []string {
	t.Helper()
	addrs, err := netlink.AddrList(link, family)
	if err != nil {
		t.Fatal(err)
	}
	var s []string
	for _, a := range addrs {
		if a.IP.IsLinkLocalUnicast() {
			continue
		}
		s = append(s, a.IPNet.String())
	}
	return s
}

func TestStatic(t *testing.T) {
	netnstest.Require(t)
	peer := netnstest.NewNamespace(t)
	macUplink, _ := net.ParseMAC("02:00:00:00:00:01")
	macLeased, _ := net.ParseMAC("02:00:00:00:00:02")
	addVeth(t, "veth-a", macUplink, peer, "peer-a")
	addVeth(t, "veth-b", macLeased, peer, "peer-b")
	configurePeer(t, peer, "peer-a", "10.50.0.1/24", "10.50.0.254/24")
	configurePeer(t, peer, "peer-b", "10.42.0.1/24")
	startDHCPServer(t, peer, "peer-b", dhcpServerIP, dhcpClientIP, time.Minute,
		dhcpv4.OptDNS(dhcpDNS), dhcpv4.OptNTPServers(dhcpNTP), dhcpv4.OptRouter(dhcpServerIP))

	cfg := &netpb.Net{
		Interface: []*netpb.Interface{
			{
				Name:    "uplink",
				Type:    &netpb.Interface_Device{Device: &netpb.Device{HardwareAddress: "02:00:00:00:00:01", Driver: "veth"}},
				Mtu:     1400,
				Address: []string{"10.50.0.2/24", "2001:db8::2/64"},
				Route: []*netpb.Route{
					{Destination: "0.0.0.0/0", Gateway: "10.50.0.1"},
					{Destination: "192.0.2.0/24", Gateway: "10.50.0.254", Metric: 100},
					{Destination: "198.51.100.0/24"},
				},
			},
			{
				Name:   "leased",
				Type:   &netpb.Interface_Device{Device: &netpb.Device{HardwareAddress: "02:00:00:00:00:02"}},
				Dhcpv4: true,
			},
		},
		Nameservers: &netpb.Nameservers{Server: []string{"10.50.0.53"}},
		NtpServers:  []string{"10.50.0.123", "ntp.example.com"},
	}
	svc := New(Config{StaticConfig: cfg})
	supervisor.TestHarness(t, svc.Run)

	// The static address on the interface with the default route is the
	// external address; DNS and NTP servers come from the configuration
	// and from the lease.
	st := waitForStatus(t, svc.Status(), 20*time.Second, "the leased interface's servers", func(s *Status) bool {
		return len(s.DNSServers) == 2
	})
	if got := st.ExternalAddress.String(); got != "10.50.0.2" {
		t.Errorf("external address %s, want 10.50.0.2", got)
	}
	if got := fmt.Sprint(st.DNSServers, st.NTPServers, st.NTPServerNames); got != "[10.50.0.53 10.42.0.53] [10.50.0.123 10.42.0.123] [ntp.example.com]" {
		t.Errorf("DNS servers, NTP servers and NTP server names: %s", got)
	}

	uplink, err := netlink.LinkByName("uplink")
	if err != nil {
		t.Fatalf("device not renamed: %v", err)
	}
	if uplink.Attrs().MTU != 1400 || uplink.Attrs().Flags&net.FlagUp == 0 {
		t.Errorf("uplink has MTU %d and flags %v, want MTU 1400 and up", uplink.Attrs().MTU, uplink.Attrs().Flags)
	}
	if got := addrStrings(t, uplink, netlink.FAMILY_ALL); !slices.Equal(got, []string{"10.50.0.2/24", "2001:db8::2/64"}) {
		t.Errorf("uplink has addresses %v, want 10.50.0.2/24 and 2001:db8::2/64", got)
	}
	routes, err := netlink.RouteListFiltered(netlink.FAMILY_V4,
		&netlink.Route{LinkIndex: uplink.Attrs().Index, Protocol: unix.RTPROT_STATIC},
		netlink.RT_FILTER_OIF|netlink.RT_FILTER_PROTOCOL)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range routes {
		got = append(got, fmt.Sprintf("%s via %v metric %d", prefixString(r.Dst), r.Gw, r.Priority))
	}
	slices.Sort(got)
	want := []string{"0.0.0.0/0 via 10.50.0.1 metric 0", "192.0.2.0/24 via 10.50.0.254 metric 100", "198.51.100.0/24 via <nil> metric 0"}
	if !slices.Equal(got, want) {
		t.Errorf("static routes %v, want %v", got, want)
	}

	leased, err := netlink.LinkByName("leased")
	if err != nil {
		t.Fatalf("device not renamed: %v", err)
	}
	if _, err := leaseAddress(leased); err != nil {
		t.Error(err)
	}
}

func TestStaticDeviceMatching(t *testing.T) {
	netnstest.Require(t)
	peer := netnstest.NewNamespace(t)
	mac, _ := net.ParseMAC("02:00:00:00:01:01")
	addVeth(t, "veth-m", mac, peer, "peer-m")
	for _, tc := range []struct {
		name string
		dev  *netpb.Device
		want string
	}{
		{"driver mismatch", &netpb.Device{HardwareAddress: mac.String(), Driver: "virtio_net"}, "no device with hardware address 02:00:00:00:01:01 and driver virtio_net"},
		{"absent", &netpb.Device{HardwareAddress: "02:00:00:00:01:02"}, "no device with hardware address 02:00:00:00:01:02"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sc, err := parseStaticConfig(&netpb.Net{Interface: []*netpb.Interface{{Name: "x", Type: &netpb.Interface_Device{Device: tc.dev}}}})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := findDevice(sc.interfaces[0]); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

// kernelHas skips t unless the kernel can create links of kind, which needs
// its module (bonding, 8021q), loaded or built in. In the ktest VM, which
// has the modules, not having them fails t.
func kernelHas(t *testing.T, kind string, link netlink.Link) {
	t.Helper()
	if err := netlink.LinkAdd(link); err != nil {
		if ktest.InVM() {
			t.Fatalf("the VM's kernel cannot create %s links: %v", kind, err)
		}
		t.Skipf("the kernel cannot create %s links (%v): module not loaded or not built; TestKernel runs this test in a VM", kind, err)
	}
	netlink.LinkDel(link)
}

func TestStaticBondAndVLAN(t *testing.T) {
	netnstest.Require(t)
	kernelHas(t, "bond", netlink.NewLinkBond(netlink.LinkAttrs{Name: "probe-bond"}))
	peer := netnstest.NewNamespace(t)
	parent := addVeth(t, "probe-parent", nil, peer, "probe-peer")
	kernelHas(t, "VLAN", &netlink.Vlan{LinkAttrs: netlink.LinkAttrs{Name: "probe-vlan", ParentIndex: parent.Attrs().Index}, VlanId: 5})

	macA, _ := net.ParseMAC("02:00:00:00:02:01")
	macB, _ := net.ParseMAC("02:00:00:00:02:02")
	addVeth(t, "veth-ba", macA, peer, "peer-ba")
	addVeth(t, "veth-bb", macB, peer, "peer-bb")
	cfg := &netpb.Net{Interface: []*netpb.Interface{
		device("m0", macA.String()),
		device("m1", macB.String()),
		{Name: "bond0", Type: &netpb.Interface_Bond{Bond: &netpb.Bond{MemberInterface: []string{"m0", "m1"}, Mode: netpb.Bond_MODE_ACTIVE_BACKUP}}},
		{Name: "bond0.10", Type: &netpb.Interface_Vlan{Vlan: &netpb.VLAN{Parent: "bond0", Id: 10}}, Address: []string{"10.60.0.2/24"}},
	}}
	svc := New(Config{StaticConfig: cfg})
	supervisor.TestHarness(t, svc.Run)
	st := waitForStatus(t, svc.Status(), 20*time.Second, "an external address", func(s *Status) bool { return s.ExternalAddress != nil })
	if got := st.ExternalAddress.String(); got != "10.60.0.2" {
		t.Errorf("external address %s, want 10.60.0.2", got)
	}
	t.Cleanup(func() {
		for _, name := range []string{"bond0.10", "bond0"} {
			if l, err := netlink.LinkByName(name); err == nil {
				netlink.LinkDel(l)
			}
		}
	})

	bond, err := netlink.LinkByName("bond0")
	if err != nil {
		t.Fatal(err)
	}
	if b, ok := bond.(*netlink.Bond); !ok || b.Mode != netlink.BOND_MODE_ACTIVE_BACKUP {
		t.Errorf("bond0 is %T %+v, want an active-backup bond", bond, bond)
	}
	for _, m := range []string{"m0", "m1"} {
		l, err := netlink.LinkByName(m)
		if err != nil {
			t.Fatal(err)
		}
		if l.Attrs().MasterIndex != bond.Attrs().Index {
			t.Errorf("%s is not a member of bond0", m)
		}
	}
	vlan, err := netlink.LinkByName("bond0.10")
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := vlan.(*netlink.Vlan); !ok || v.VlanId != 10 || v.ParentIndex != bond.Attrs().Index {
		t.Errorf("bond0.10 is %T %+v, want VLAN 10 on bond0", vlan, vlan)
	}
	if got := addrStrings(t, vlan, netlink.FAMILY_V4); !slices.Equal(got, []string{"10.60.0.2/24"}) {
		t.Errorf("bond0.10 has addresses %v, want 10.60.0.2/24", got)
	}
}
