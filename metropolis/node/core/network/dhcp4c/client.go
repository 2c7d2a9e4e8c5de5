package dhcp4c

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"net"
	"net/netip"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"

	"metropolis.dev/osbase/supervisor"
)

// LeaseCallback is called by the client whenever its lease changes: when it
// obtains one (old is nil), when a lease is renewed or replaced, and when it
// expires (new is nil). It runs on the client's goroutine, so the client
// waits for it. An error stops the client, which returns it from Run.
type LeaseCallback func(old, new *Lease) error

// Client keeps one interface leased. Configure it through its fields before
// calling Run.
type Client struct {
	iface *net.Interface

	// VendorClass, if not empty, is sent as the vendor class identifier
	// (option 60), which lets servers tell the client's kind of machine.
	VendorClass string
	// LeaseCallback applies leases. It is required.
	LeaseCallback LeaseCallback
}

// NewClient returns a client for the Ethernet interface iface.
func NewClient(iface *net.Interface) (*Client, error) {
	if len(iface.HardwareAddr) != 6 {
		return nil, fmt.Errorf("interface %s has no Ethernet address (hardware address %q)", iface.Name, iface.HardwareAddr)
	}
	return &Client{iface: iface}, nil
}

// requestedOptions is the parameter request list.
var requestedOptions = dhcpv4.OptParameterRequestList(
	dhcpv4.OptionSubnetMask,
	dhcpv4.OptionRouter,
	dhcpv4.OptionDomainNameServer,
	dhcpv4.OptionDomainName,
	dhcpv4.OptionBroadcastAddress,
	dhcpv4.OptionNTPServers,
	dhcpv4.OptionClasslessStaticRoute,
)

// Run runs the client until ctx is canceled. It is a supervisor runnable.
// The interface keeps its last lease's configuration when Run returns, as
// applied by the callback; a restarted client starts afresh, and the
// callback of the first lease is called with old set to nil.
func (c *Client) Run(ctx context.Context) error {
	if c.LeaseCallback == nil {
		return errors.New("dhcp4c: Client.LeaseCallback is nil")
	}
	log := supervisor.Logger(ctx)
	options := []dhcpv4.Option{requestedOptions, dhcpv4.OptMaxMessageSize(maxMessageSize)}
	if c.VendorClass != "" {
		options = append(options, dhcpv4.OptClassIdentifier(c.VendorClass))
	}
	m := newMachine(c.iface.HardwareAddr, options, newTransactionID, randomJitter)

	var conn transport
	var connFor transmission
	closeConn := func() {
		if conn != nil {
			conn.close()
			conn = nil
		}
	}
	defer closeConn()

	supervisor.Signal(ctx, supervisor.SignalHealthy)
	log.Infof("Starting DHCP on %s (%s)", c.iface.Name, c.iface.HardwareAddr)
	for {
		before, oldLease := m.state, m.lease
		t := m.next(time.Now())
		accepted := false
		if t.msg == nil {
			closeConn()
			if err := sleepUntil(ctx, t.until); err != nil {
				return err
			}
		} else {
			// A transport fits the next transmission if it goes the same
			// way from the same address.
			if conn != nil && !(connFor.to.Equal(t.to) && connFor.from.Equal(t.from)) {
				closeConn()
			}
			if conn == nil {
				var err error
				if conn, err = c.open(t); err != nil {
					return err
				}
				connFor = t
			}
			if err := conn.send(t.msg); err != nil {
				// A lost message, as far as the protocol is concerned: it
				// is retransmitted in time.
				log.Warningf("Sending %v: %v", t.msg.MessageType(), err)
			}
			var err error
			if accepted, err = c.awaitReply(ctx, m, conn, t.until); err != nil {
				return err
			}
		}
		if !accepted {
			m.timeout(time.Now())
		}
		if m.state != before {
			c.logTransition(ctx, before, m, accepted)
		}
		if m.lease != oldLease {
			if err := c.LeaseCallback(oldLease, m.lease); err != nil {
				return fmt.Errorf("applying lease: %w", err)
			}
		}
	}
}

// awaitReply receives messages until one is accepted by m or until passes.
func (c *Client) awaitReply(ctx context.Context, m *machine, conn transport, until time.Time) (bool, error) {
	log := supervisor.Logger(ctx)
	for {
		msg, err := conn.receive(ctx, until)
		if errors.Is(err, errTimeout) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		err = m.handle(time.Now(), msg)
		switch {
		case err == nil:
			return true, nil
		case errors.Is(err, errNotOurs):
		default:
			log.Warningf("Ignoring %v from %v: %v", msg.MessageType(), msg.ServerIdentifier(), err)
		}
	}
}

func (c *Client) open(t transmission) (transport, error) {
	from := netip.IPv4Unspecified()
	if t.from != nil {
		from, _ = netip.AddrFromSlice(t.from.To4())
	}
	if t.to == nil {
		return openRaw(c.iface, from)
	}
	to, _ := netip.AddrFromSlice(t.to.To4())
	return openUDP(c.iface, from, to)
}

// logTransition logs the move of m from state before to its current state,
// caused by a reply if byReply is set, and by a timeout otherwise.
func (c *Client) logTransition(ctx context.Context, before state, m *machine, byReply bool) {
	log := supervisor.Logger(ctx)
	switch m.state {
	case stateBound:
		l := m.lease
		if before == stateRenewing || before == stateRebinding {
			log.Infof("Lease of %v extended by %v for %v", l.Address(), l.ServerID(), l.Duration)
			return
		}
		log.Infof("Bound %v from server %v for %v (renewing after %v, rebinding after %v)",
			l.Address(), l.ServerID(), l.Duration, l.RenewAfter, l.RebindAfter)
	case stateRenewing:
		log.Infof("Renewing lease at server %v", m.lease.ServerID())
	case stateRebinding:
		log.Warningf("Server %v did not renew the lease, rebinding with any server", m.lease.ServerID())
	case stateRequesting:
		log.Infof("Requesting %v offered by %v", m.offer.YourIPAddr, m.offer.ServerIdentifier())
	case stateDiscovering:
		switch {
		case byReply:
			log.Warningf("Server refused the request (NAK) while %v, discovering servers again", before)
		case before == stateRequesting:
			log.Warningf("No reply to the request for the offered address, discovering servers again")
		default:
			log.Warningf("Lease expired while %v, discovering servers again", before)
		}
	}
}

func sleepUntil(ctx context.Context, until time.Time) error {
	timer := time.NewTimer(time.Until(until))
	defer timer.Stop()
	select {
	case <-timer.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func newTransactionID() dhcpv4.TransactionID {
	var xid dhcpv4.TransactionID
	rand.Read(xid[:])
	return xid
}

func randomJitter() time.Duration {
	return time.Duration(mrand.Int64N(int64(2*maxJitter+1))) - maxJitter
}
