package qemu

import (
	"errors"
	"fmt"
	"net"
)

// TapNetwork adds a virtio network card connected to a tap device of the
// host, in qemu's network namespace. The test creates the device, with
// netlink for example, and configures its host side like any other
// interface: addresses, routes, servers listening on it. Creating it in a
// network namespace of the test's own keeps the machine's network
// untouched, and qemu then has to be started in that namespace too.
type TapNetwork struct {
	// Device is the name of the tap device. It must exist when qemu
	// starts, and not be multi-queue.
	Device string
	// MAC is the card's address. If nil, a locally administered address
	// derived from the VM's directory and the device's position is used,
	// as for StreamNetwork.
	MAC net.HardwareAddr
}

// Args returns the tap netdev and its virtio-net device.
func (n TapNetwork) Args(s *Setup) ([]string, error) {
	if n.Device == "" {
		return nil, errors.New("TapNetwork needs a tap device")
	}
	mac := StreamNetwork{MAC: n.MAC}.mac(s)
	if len(mac) != 6 {
		return nil, fmt.Errorf("MAC address %v is not 6 bytes long", mac)
	}
	id := s.ID("net")
	return []string{
		// Without script and downscript, qemu neither configures the
		// device nor needs the privileges to.
		"-netdev", "tap,id=" + id + ",ifname=" + escapeOpt(n.Device) + ",script=no,downscript=no",
		"-device", "virtio-net-pci,netdev=" + id + ",mac=" + mac.String(),
	}, nil
}
