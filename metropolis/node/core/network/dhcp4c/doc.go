// Package dhcp4c is a DHCPv4 client (RFC 2131) that keeps an interface
// leased for as long as it runs: it discovers a server, requests an address,
// renews the lease at T1 by unicast to the server that granted it, rebinds at
// T2 by broadcast to any server, and gives the address up when the lease
// expires without having been extended. Whoever runs the client applies the
// lease (addresses, routes, resolvers) in a LeaseCallback; the client itself
// never touches the interface's configuration.
//
// # Shape
//
// The protocol logic is a state machine without I/O or clocks (machine.go):
// it is told the current time and the messages that arrived, and answers with
// the message to send, where to, and until when to wait for a reply. Its
// tests drive it through whole lease lifetimes deterministically, without
// sockets or sleeping. Client.Run is the thin loop around it that owns the
// sockets and the real clock.
//
// Packets are encoded and decoded with github.com/insomniacslk/dhcp/dhcpv4,
// but the client does not use that module's nclient4: nclient4 covers single
// exchanges (discover/request, renew) and leaves the lease lifecycle, the
// rebinding state and retransmission timing to its caller, and it reads the
// clock itself, so the lifecycle could not be tested without waiting it out.
//
// # Transports
//
// Until the client holds an address, and while rebinding, it sends and
// receives through a packet socket bound to the interface (rawTransport),
// which builds and checks the IPv4 and UDP headers itself (udpv4.go). That is the only way to send
// from 0.0.0.0, and it receives replies regardless of the interface's
// addresses, reverse path filtering or firewall, none of which let a
// plain UDP socket see a server's reply before the interface is configured.
// Renewals go by unicast from the leased address through an ordinary UDP
// socket bound to the interface (udpTransport), as RFC 2131 requires.
//
// Not implemented: rapid commit (RFC 4039), checking the leased address for
// conflicts by ARP before using it (and DHCPDECLINE), and reusing the last
// lease after a restart (INIT-REBOOT); a restarted client discovers anew.
package dhcp4c
