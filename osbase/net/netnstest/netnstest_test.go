package netnstest

import (
	"net"
	"testing"

	"github.com/vishvananda/netlink"
)

func TestMain(m *testing.M) {
	Main(m)
}

func linkNames(t *testing.T, list func() ([]netlink.Link, error)) []string {
	t.Helper()
	links, err := list()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, l := range links {
		names = append(names, l.Attrs().Name)
	}
	return names
}

func TestNamespaces(t *testing.T) {
	Require(t)
	// A fresh namespace has nothing but loopback.
	if names := linkNames(t, netlink.LinkList); len(names) != 1 || names[0] != "lo" {
		t.Fatalf("test namespace has links %v, want only lo", names)
	}

	other := NewNamespace(t)
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "here"}, PeerName: "there"}
	if err := netlink.LinkAdd(veth); err != nil {
		t.Fatalf("creating veth pair: %v", err)
	}
	there, err := netlink.LinkByName("there")
	if err != nil {
		t.Fatal(err)
	}
	if err := netlink.LinkSetNsFd(there, other.FD()); err != nil {
		t.Fatalf("moving veth end: %v", err)
	}
	if names := linkNames(t, other.Netlink.LinkList); len(names) != 2 || names[1] != "there" {
		t.Errorf("other namespace has links %v, want lo and there", names)
	}

	// Code run by Do sees the other namespace, and the caller stays in
	// its own.
	var seen []string
	if err := other.Do(func() error {
		ifaces, err := net.Interfaces()
		for _, i := range ifaces {
			seen = append(seen, i.Name)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if len(seen) != 2 || seen[1] != "there" {
		t.Errorf("Do saw interfaces %v, want lo and there", seen)
	}
	if names := linkNames(t, netlink.LinkList); len(names) != 2 || names[1] != "here" {
		t.Errorf("after Do, test namespace has links %v, want lo and here", names)
	}
}
