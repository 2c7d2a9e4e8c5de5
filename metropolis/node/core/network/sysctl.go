package network

import (
	"fmt"
	"os"
	"path/filepath"
)

// sysctls are the kernel network parameters the node runs with, as paths
// below /proc/sys. The node forwards packets (for pods and the cluster
// network), filters packets whose source address could not have come in on
// their interface (strict reverse path filtering, against spoofing), takes
// no source routes, and does not configure IPv6 from router advertisements:
// all addressing is the network service's.
var sysctls = []struct{ path, value string }{
	{"net/ipv4/ip_forward", "1"},
	{"net/ipv4/conf/all/rp_filter", "1"},
	{"net/ipv4/conf/default/rp_filter", "1"},
	{"net/ipv4/conf/all/accept_source_route", "0"},
	{"net/ipv4/conf/default/accept_source_route", "0"},
	{"net/ipv6/conf/all/accept_source_route", "0"},
	{"net/ipv6/conf/default/accept_source_route", "0"},
	{"net/ipv6/conf/all/accept_ra", "0"},
	{"net/ipv6/conf/default/accept_ra", "0"},
}

// applySysctls writes sysctls below root, normally /proc/sys.
func applySysctls(root string) error {
	for _, s := range sysctls {
		path := filepath.Join(root, s.path)
		if err := os.WriteFile(path, []byte(s.value+"\n"), 0o644); err != nil {
			return fmt.Errorf("setting sysctl %s: %w", s.path, err)
		}
	}
	return nil
}
