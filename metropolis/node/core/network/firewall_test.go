package network

import (
	"encoding/binary"
	"errors"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/vishvananda/netlink"

	"metropolis.dev/metropolis/node"
	"metropolis.dev/osbase/net/netnstest"
)

// dialFrom connects from ns to addr over TCP.
func dialFrom(ns *netnstest.Namespace, addr string) error {
	var conn net.Conn
	err := ns.Do(func() (err error) {
		conn, err = net.DialTimeout("tcp", addr, time.Second)
		return err
	})
	if err == nil {
		conn.Close()
	}
	return err
}

// listen accepts and closes TCP connections on addr until the test ends.
// The listening socket is created in ns, or in the test's namespace if ns
// is nil.
func listen(t *testing.T, ns *netnstest.Namespace, addr string) {
	t.Helper()
	var l net.Listener
	create := func() (err error) {
		l, err = net.Listen("tcp", addr)
		return err
	}
	var err error
	if ns != nil {
		err = ns.Do(create)
	} else {
		err = create()
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			conn.Close()
		}
	}()
}

// removeFirewall removes the node's tables, if they exist.
func removeFirewall(t *testing.T) {
	t.Helper()
	c, err := nftables.New()
	if err != nil {
		t.Fatal(err)
	}
	tables, err := c.ListTablesOfFamily(nftables.TableFamilyINet)
	if err != nil {
		t.Fatal(err)
	}
	for _, tb := range tables {
		if tb.Name == filterTable || tb.Name == natTable {
			c.DelTable(tb)
		}
	}
	if err := c.Flush(); err != nil {
		t.Fatalf("removing firewall: %v", err)
	}
}

func isTimeout(err error) bool {
	var netErr net.Error
	return errors.As(err, &netErr) && netErr.Timeout()
}

func TestFirewall(t *testing.T) {
	netnstest.Require(t)
	peer := netnstest.NewNamespace(t)
	link := addVeth(t, "fw0", nil, peer, "fwpeer")
	configurePeer(t, peer, "fwpeer", "10.43.0.1/24")
	addr, _ := netlink.ParseAddr("10.43.0.2/24")
	if err := netlink.AddrAdd(link, addr); err != nil {
		t.Fatal(err)
	}
	if err := netlink.LinkSetUp(link); err != nil {
		t.Fatal(err)
	}
	listen(t, nil, "10.43.0.2:7835")
	listen(t, nil, "10.43.0.2:9999")
	listen(t, peer, "10.43.0.1:8080")

	// Without the firewall, which other tests in this namespace may have
	// left, the closed port is open. Links take a moment to come up.
	removeFirewall(t)
	poll(t, 5*time.Second, "connecting before the firewall", func() error {
		return dialFrom(peer, "10.43.0.2:9999")
	})

	// Applying twice replaces the ruleset instead of adding to it.
	for range 2 {
		if err := applyFirewall(); err != nil {
			t.Fatalf("applying firewall: %v", err)
		}
	}

	t.Run("ruleset", func(t *testing.T) {
		c, err := nftables.New()
		if err != nil {
			t.Fatal(err)
		}
		tables, err := c.ListTablesOfFamily(nftables.TableFamilyINet)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, tb := range tables {
			names = append(names, tb.Name)
		}
		slices.Sort(names)
		if !slices.Equal(names, []string{filterTable, natTable}) {
			t.Fatalf("inet tables %v, want %s and %s", names, filterTable, natTable)
		}
		chains, err := c.ListChainsOfTableFamily(nftables.TableFamilyINet)
		if err != nil {
			t.Fatal(err)
		}
		byName := make(map[string]*nftables.Chain)
		for _, ch := range chains {
			byName[ch.Table.Name+"/"+ch.Name] = ch
		}
		if len(chains) != 3 {
			t.Errorf("%d chains, want input, forward and postrouting", len(chains))
		}
		for _, want := range []struct {
			name   string
			hook   nftables.ChainHook
			policy nftables.ChainPolicy
		}{
			{filterTable + "/input", *nftables.ChainHookInput, nftables.ChainPolicyDrop},
			{filterTable + "/forward", *nftables.ChainHookForward, nftables.ChainPolicyAccept},
			{natTable + "/postrouting", *nftables.ChainHookPostrouting, nftables.ChainPolicyAccept},
		} {
			ch := byName[want.name]
			switch {
			case ch == nil:
				t.Errorf("no chain %s", want.name)
			case ch.Hooknum == nil || *ch.Hooknum != want.hook || ch.Policy == nil || *ch.Policy != want.policy:
				t.Errorf("chain %s has hook %v and policy %v, want %v and %v", want.name, ch.Hooknum, ch.Policy, want.hook, want.policy)
			}
		}
		if ch := byName[filterTable+"/input"]; ch != nil {
			rules, err := c.GetRules(ch.Table, ch)
			if err != nil {
				t.Fatal(err)
			}
			if len(rules) != 8 {
				t.Errorf("input chain has %d rules, want 8", len(rules))
			}
			set, err := c.GetSetByName(ch.Table, tcpServicesSet)
			if err != nil {
				t.Fatal(err)
			}
			elems, err := c.GetSetElements(set)
			if err != nil {
				t.Fatal(err)
			}
			var ports []int
			for _, e := range elems {
				ports = append(ports, int(binary.BigEndian.Uint16(e.Key)))
			}
			slices.Sort(ports)
			want := []int{node.ConsensusPort, node.CuratorServicePort, node.NetworkProbePort, node.NodeManagementPort, node.MetricsPort}
			if !slices.Equal(ports, want) {
				t.Errorf("set %s holds ports %v, want %v", tcpServicesSet, ports, want)
			}
		}
	})

	t.Run("traffic", func(t *testing.T) {
		if err := dialFrom(peer, "10.43.0.2:7835"); err != nil {
			t.Errorf("connecting to the curator port: %v", err)
		}
		// Dropped, not refused: the connection attempt times out.
		if err := dialFrom(peer, "10.43.0.2:9999"); !isTimeout(err) {
			t.Errorf("connecting to a port the firewall closes: got %v, want a timeout", err)
		}
		// The node's own connections out are answered.
		conn, err := net.DialTimeout("tcp", "10.43.0.1:8080", time.Second)
		if err != nil {
			t.Errorf("connecting out from the node: %v", err)
		} else {
			conn.Close()
		}
		// Loopback is open.
		listen(t, nil, "127.0.0.1:9999")
		conn, err = net.DialTimeout("tcp", "127.0.0.1:9999", time.Second)
		if err != nil {
			t.Errorf("connecting over loopback: %v", err)
		} else {
			conn.Close()
		}
	})
}
