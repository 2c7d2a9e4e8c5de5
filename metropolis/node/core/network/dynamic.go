package network

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/vishvananda/netlink"

	"metropolis.dev/metropolis/node/core/network/dhcp4c"
	"metropolis.dev/osbase/supervisor"
)

// runDynamic configures the node's single Ethernet interface by DHCP.
func (s *Service) runDynamic(ctx context.Context) error {
	link, err := waitForSingleEthernet(ctx)
	if err != nil {
		return err
	}
	supervisor.Logger(ctx).Infof("Using %s (%s) for DHCP", link.Attrs().Name, link.Attrs().HardwareAddr)
	if err := netlink.LinkSetUp(link); err != nil {
		return fmt.Errorf("bringing %s up: %w", link.Attrs().Name, err)
	}
	onLease := func(l *dhcp4c.Lease) {
		st := &Status{}
		if l != nil {
			st.ExternalAddress = l.Address().IP
			st.DNSServers = l.DNSServers()
			st.NTPServers = l.NTPServers()
		}
		s.status.Set(st)
	}
	if err := supervisor.Run(ctx, "dhcp", s.runDHCP(link, onLease)); err != nil {
		return err
	}
	supervisor.Signal(ctx, supervisor.SignalHealthy)
	<-ctx.Done()
	return ctx.Err()
}

// isEthernetDevice reports whether l is an Ethernet interface the node may
// configure by itself: a device backed by a driver, or a veth, as whose end
// the node sees its network when it runs in a network namespace (as in
// tests). Links in a non-default link group are left out: node services
// put the links they create, such as the veths of pods, into groups of
// their own. So are links enslaved to a bond or bridge.
func isEthernetDevice(l netlink.Link) bool {
	a := l.Attrs()
	return a.EncapType == "ether" && (l.Type() == "device" || l.Type() == "veth") && a.Group == 0 && a.MasterIndex == 0
}

// waitForSingleEthernet returns the node's Ethernet interface, waiting for
// there to be exactly one. While there is none or there are several, it
// logs so whenever that changes.
func waitForSingleEthernet(ctx context.Context) (netlink.Link, error) {
	log := supervisor.Logger(ctx)
	updates := make(chan netlink.LinkUpdate, 16)
	done := make(chan struct{})
	defer func() {
		close(done)
		// The subscription's goroutine may be sending an update; it
		// closes the channel once it has noticed done.
		go func() {
			for range updates {
			}
		}()
	}()
	subscribeErr := make(chan error, 1)
	err := netlink.LinkSubscribeWithOptions(updates, done, netlink.LinkSubscribeOptions{
		ErrorCallback: func(err error) {
			select {
			case subscribeErr <- err:
			default:
			}
		},
	})
	if err != nil {
		return nil, fmt.Errorf("subscribing to link changes: %w", err)
	}
	var lastReport string
	for {
		links, err := netlink.LinkList()
		if err != nil {
			return nil, fmt.Errorf("listing links: %w", err)
		}
		var candidates []netlink.Link
		var names []string
		for _, l := range links {
			if isEthernetDevice(l) {
				candidates = append(candidates, l)
				names = append(names, l.Attrs().Name)
			}
		}
		if len(candidates) == 1 {
			return candidates[0], nil
		}
		slices.Sort(names)
		var report string
		if len(candidates) == 0 {
			report = "No Ethernet interface found, waiting for one to appear"
		} else {
			report = fmt.Sprintf("Several Ethernet interfaces (%s), cannot tell which one to use DHCP on: "+
				"waiting for all but one to disappear; configure the network statically to use several", strings.Join(names, ", "))
		}
		if report != lastReport {
			log.Warning(report)
			lastReport = report
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case err := <-subscribeErr:
			return nil, fmt.Errorf("following link changes: %w", err)
		case <-updates:
		}
	}
}
