// Package nanoswitch is the network of a test cluster: an Ethernet switch
// between the cluster's virtual machines, with a router port that serves
// DHCP and lets the host reach the machines through a SOCKS5 proxy.
//
// Each machine's network card is a qemu stream netdev connected to a unix
// socket of the switch (see qemu.StreamNetwork), so the whole network lives
// in the test process:
//
//   - it needs no root and changes nothing on the host: no bridge, no tap
//     device, no address, no firewall rule, no namespace;
//   - it costs no extra virtual machine, which matters when qemu emulates
//     the CPU (no KVM) and every booted kernel takes minutes;
//   - the test controls it directly: it reads the DHCP leases, dials into
//     the network (DialContext), and injects faults per port (SetFault).
//
// The switch's own interface runs in gVisor's userspace TCP/IP stack
// (netstack) with the first address of the subnet, by default 10.1.0.1 in
// 10.1.0.0/24. Its DHCP server hands out addresses from .2 upward in the
// order machines first ask, and keeps them per MAC address for the life of
// the switch, so the first machine is always 10.1.0.2. Leases are short
// (30 s by default) so that tests exercise renewals.
//
// Traffic from the host enters the network only through TCP connections the
// switch's stack opens on its behalf (the SOCKS5 proxy or DialContext), and
// only to machine addresses of the subnet: nothing on the test network can
// reach the host or anything beyond it.
package nanoswitch
