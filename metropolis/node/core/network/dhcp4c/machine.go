package dhcp4c

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"net"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"
)

// state is the client's state as in RFC 2131, figure 5. INIT and SELECTING
// are one state here, as the client takes the first acceptable offer.
type state int

const (
	stateDiscovering state = iota
	stateRequesting
	stateBound
	stateRenewing
	stateRebinding
)

func (s state) String() string {
	switch s {
	case stateDiscovering:
		return "discovering"
	case stateRequesting:
		return "requesting"
	case stateBound:
		return "bound"
	case stateRenewing:
		return "renewing"
	case stateRebinding:
		return "rebinding"
	}
	return fmt.Sprintf("state(%d)", int(s))
}

// Retransmission timing (RFC 2131, 4.1 and 4.4.5).
const (
	// firstRetransmit is the wait for a reply to the first DISCOVER or
	// REQUEST of an exchange. It doubles with every retransmission, up to
	// maxRetransmit, and is randomized by up to maxJitter either way, so
	// that clients which started together do not retransmit together.
	firstRetransmit = 4 * time.Second
	maxRetransmit   = 64 * time.Second
	maxJitter       = time.Second
	// minLeaseRetransmit is the shortest wait between REQUESTs while
	// renewing or rebinding, which otherwise wait half the time left until
	// T2 or the lease's end. The wait never goes past T2 or the end, so
	// short leases still move on in time.
	minLeaseRetransmit = 60 * time.Second
	// requestAttempts is how often the REQUEST for an offer is sent before
	// the client gives up on the offer and discovers again.
	requestAttempts = 4
)

// transmission is what the machine wants done next: send msg, if any, and
// wait for a reply until until.
type transmission struct {
	// msg is nil if there is nothing to send: a bound client only waits
	// for T1.
	msg *dhcpv4.DHCPv4
	// to is the server to unicast msg to, or nil to broadcast it.
	to net.IP
	// from is the source address of msg: the leased address while
	// renewing or rebinding, nil (0.0.0.0) before the client has one.
	from net.IP
	// until is when the machine wants to be told that no reply came.
	until time.Time
}

// machine is the client's protocol logic, without I/O and without a clock:
// its methods take the current time. See the package documentation.
type machine struct {
	hwAddr net.HardwareAddr
	// options are added to every message the client sends.
	options []dhcpv4.Option
	// newXID returns a fresh transaction ID for each exchange.
	newXID func() dhcpv4.TransactionID
	// jitter returns a random duration within ±maxJitter.
	jitter func() time.Duration

	state state
	// xid identifies the current exchange; replies must carry it.
	xid dhcpv4.TransactionID
	// exchangeStart is when the current exchange began, for the secs
	// field.
	exchangeStart time.Time
	// sent counts the messages sent in the current state.
	sent int
	// lastSent is when the last message was sent: a lease granted in
	// reply to it starts then.
	lastSent time.Time
	// offer is the offer being requested, in stateRequesting.
	offer *dhcpv4.DHCPv4
	// lease is the current lease, in stateBound, stateRenewing and
	// stateRebinding, and nil otherwise.
	lease *Lease
}

func newMachine(hwAddr net.HardwareAddr, options []dhcpv4.Option, newXID func() dhcpv4.TransactionID, jitter func() time.Duration) *machine {
	return &machine{
		hwAddr:  hwAddr,
		options: options,
		newXID:  newXID,
		jitter:  jitter,
		state:   stateDiscovering,
	}
}

// enter moves the machine to s.
func (m *machine) enter(s state) {
	m.state = s
	m.sent = 0
	if s == stateDiscovering {
		m.offer = nil
		m.lease = nil
	}
}

// next returns what to do now: the message to send, if any, and how long to
// wait for a reply. Each call is a transmission; calling it again without a
// reply or timeout in between retransmits.
func (m *machine) next(now time.Time) transmission {
	if m.sent == 0 && (m.state == stateDiscovering || m.state == stateRenewing || m.state == stateRebinding) {
		// These states begin an exchange; a request for an offer continues
		// the exchange of the DISCOVER that brought the offer.
		m.xid = m.newXID()
		m.exchangeStart = now
	}
	var t transmission
	switch m.state {
	case stateBound:
		return transmission{until: m.lease.RenewAt()}
	case stateDiscovering:
		t.msg = m.message(now, dhcpv4.MessageTypeDiscover)
		t.until = now.Add(m.retransmitWait())
	case stateRequesting:
		t.msg = m.message(now, dhcpv4.MessageTypeRequest,
			dhcpv4.OptRequestedIPAddress(m.offer.YourIPAddr),
			dhcpv4.OptServerIdentifier(m.offer.ServerIdentifier()))
		t.until = now.Add(m.retransmitWait())
	case stateRenewing:
		t.from = m.lease.ACK.YourIPAddr
		t.to = m.lease.ServerID()
		t.msg = m.message(now, dhcpv4.MessageTypeRequest)
		t.msg.ClientIPAddr = t.from
		t.until = leaseRetransmit(now, m.lease.RebindAt())
	case stateRebinding:
		t.from = m.lease.ACK.YourIPAddr
		t.msg = m.message(now, dhcpv4.MessageTypeRequest)
		t.msg.ClientIPAddr = t.from
		t.until = leaseRetransmit(now, m.lease.ExpiresAt())
	}
	m.sent++
	m.lastSent = now
	return t
}

// retransmitWait is the wait for a reply to a DISCOVER or REQUEST, after
// m.sent earlier transmissions in the same state.
func (m *machine) retransmitWait() time.Duration {
	wait := firstRetransmit
	for i := 0; i < m.sent && wait < maxRetransmit; i++ {
		wait *= 2
	}
	return min(wait, maxRetransmit) + m.jitter()
}

// leaseRetransmit is when to retransmit a REQUEST while renewing or
// rebinding: after half the time left until end, but at least
// minLeaseRetransmit, and never after end.
func leaseRetransmit(now, end time.Time) time.Time {
	wait := max(end.Sub(now)/2, minLeaseRetransmit)
	if until := now.Add(wait); until.Before(end) {
		return until
	}
	return end
}

// message builds a message of the current exchange.
func (m *machine) message(now time.Time, typ dhcpv4.MessageType, opts ...dhcpv4.Option) *dhcpv4.DHCPv4 {
	secs := now.Sub(m.exchangeStart) / time.Second
	msg := &dhcpv4.DHCPv4{
		OpCode:        dhcpv4.OpcodeBootRequest,
		HWType:        iana.HWTypeEthernet,
		ClientHWAddr:  m.hwAddr,
		TransactionID: m.xid,
		NumSeconds:    uint16(min(secs, math.MaxUint16)),
		ClientIPAddr:  net.IPv4zero,
		YourIPAddr:    net.IPv4zero,
		ServerIPAddr:  net.IPv4zero,
		GatewayIPAddr: net.IPv4zero,
		Options:       dhcpv4.OptionsFromList(dhcpv4.OptMessageType(typ)),
	}
	for _, o := range m.options {
		msg.UpdateOption(o)
	}
	for _, o := range opts {
		msg.UpdateOption(o)
	}
	return msg
}

// timeout tells the machine that no acceptable reply came until the time
// next asked for.
func (m *machine) timeout(now time.Time) {
	switch m.state {
	case stateRequesting:
		if m.sent >= requestAttempts {
			m.enter(stateDiscovering)
		}
	case stateBound, stateRenewing, stateRebinding:
		// The lease's times are checked in order, so that a client which
		// missed one (the machine was suspended, say) catches up at once.
		switch {
		case !now.Before(m.lease.ExpiresAt()):
			m.enter(stateDiscovering)
		case !now.Before(m.lease.RebindAt()) && m.state != stateRebinding:
			m.enter(stateRebinding)
		case !now.Before(m.lease.RenewAt()) && m.state == stateBound:
			m.enter(stateRenewing)
		}
	}
}

// errNotOurs is returned by handle for replies that belong to another
// client or exchange. They are normal on a shared segment, unlike replies
// that are ours but unusable.
var errNotOurs = errors.New("reply to another client or exchange")

// handle offers a received message to the machine. It returns nil if the
// message was accepted and moved the machine on, and otherwise an error
// saying why it was ignored.
func (m *machine) handle(now time.Time, msg *dhcpv4.DHCPv4) error {
	if msg.OpCode != dhcpv4.OpcodeBootReply || msg.TransactionID != m.xid || !bytes.Equal(msg.ClientHWAddr, m.hwAddr) {
		return errNotOurs
	}
	typ := msg.MessageType()
	switch m.state {
	case stateBound:
		return fmt.Errorf("unexpected %v while bound", typ)
	case stateDiscovering:
		if typ != dhcpv4.MessageTypeOffer {
			return fmt.Errorf("unexpected %v while discovering", typ)
		}
		if err := checkOffer(msg); err != nil {
			return err
		}
		m.offer = msg
		m.enter(stateRequesting)
		return nil
	case stateRequesting:
		if !msg.ServerIdentifier().Equal(m.offer.ServerIdentifier()) {
			return fmt.Errorf("%v from %v, not the server whose offer was requested (%v)", typ, msg.ServerIdentifier(), m.offer.ServerIdentifier())
		}
	case stateRenewing:
		// Renewal requests go to the server of the lease, so a reply from
		// any other is not a reply to them.
		if !msg.ServerIdentifier().Equal(m.lease.ServerID()) {
			return fmt.Errorf("%v from %v, not the lease's server (%v)", typ, msg.ServerIdentifier(), m.lease.ServerID())
		}
	}
	switch typ {
	case dhcpv4.MessageTypeAck:
		lease, err := leaseFromACK(msg, m.lastSent)
		if err != nil {
			return err
		}
		m.enter(stateBound)
		m.offer = nil
		m.lease = lease
		return nil
	case dhcpv4.MessageTypeNak:
		m.enter(stateDiscovering)
		return nil
	}
	return fmt.Errorf("unexpected %v while %v", typ, m.state)
}

// checkOffer rejects offers the client could not request.
func checkOffer(offer *dhcpv4.DHCPv4) error {
	if ip := offer.YourIPAddr.To4(); ip == nil || !ip.IsGlobalUnicast() {
		return fmt.Errorf("offer of unusable address %v", offer.YourIPAddr)
	}
	if offer.ServerIdentifier() == nil {
		return errors.New("offer without server identifier")
	}
	return nil
}

// leaseFromACK interprets an ACK to a request sent at start.
func leaseFromACK(ack *dhcpv4.DHCPv4, start time.Time) (*Lease, error) {
	if ip := ack.YourIPAddr.To4(); ip == nil || !ip.IsGlobalUnicast() {
		return nil, fmt.Errorf("ACK of unusable address %v", ack.YourIPAddr)
	}
	if ack.ServerIdentifier() == nil {
		return nil, errors.New("ACK without server identifier")
	}
	duration := ack.IPAddressLeaseTime(0)
	if duration <= 0 {
		return nil, errors.New("ACK without lease time")
	}
	t1 := ack.IPAddressRenewalTime(duration / 2)
	t2 := ack.IPAddressRebindingTime(duration * 7 / 8)
	if t1 <= 0 || t1 > t2 || t2 > duration {
		// RFC 2131 leaves inconsistent times to the client; the defaults
		// are always consistent.
		t1, t2 = duration/2, duration*7/8
	}
	return &Lease{ACK: ack, Start: start, Duration: duration, RenewAfter: t1, RebindAfter: t2}, nil
}
