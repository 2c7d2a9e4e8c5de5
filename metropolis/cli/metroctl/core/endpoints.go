package core

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"

	"metropolis.dev/metropolis/node"
	"metropolis.dev/metropolis/node/core/rpc/resolver"
)

// ErrNoEndpoints is returned when a cluster is to be reached without any
// endpoint given.
var ErrNoEndpoints = errors.New("no endpoints given")

// ParseEndpoint parses the address of a node running a curator: a host name
// or IP address, optionally with a port (host:port, [ipv6]:port). Without a
// port, the curator's port is used.
func ParseEndpoint(s string) (resolver.NodeEndpoint, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return resolver.NodeEndpoint{}, errors.New("empty endpoint")
	}
	host, portText, err := net.SplitHostPort(s)
	if err != nil {
		// No port, or a bare IPv6 address whose colons are not a port.
		if ip := net.ParseIP(strings.Trim(s, "[]")); ip != nil {
			return resolver.NodeByHostPort(ip.String(), node.CuratorServicePort), nil
		}
		if strings.ContainsAny(s, ":[]") {
			return resolver.NodeEndpoint{}, fmt.Errorf("endpoint %q: not host, host:port, IPv6 address or [IPv6]:port", s)
		}
		return resolver.NodeAtAddressWithDefaultPort(s), nil
	}
	if host == "" {
		return resolver.NodeEndpoint{}, fmt.Errorf("endpoint %q: no host", s)
	}
	port, err := strconv.ParseUint(portText, 10, 16)
	if err != nil || port == 0 {
		return resolver.NodeEndpoint{}, fmt.Errorf("endpoint %q: invalid port %q", s, portText)
	}
	return resolver.NodeByHostPort(host, int(port)), nil
}

// parseEndpoints parses every endpoint, dropping duplicates.
func parseEndpoints(endpoints []string) ([]resolver.NodeEndpoint, error) {
	var res []resolver.NodeEndpoint
	seen := map[resolver.NodeEndpoint]bool{}
	for _, s := range endpoints {
		ep, err := ParseEndpoint(s)
		if err != nil {
			return nil, err
		}
		if !seen[ep] {
			seen[ep] = true
			res = append(res, ep)
		}
	}
	if len(res) == 0 {
		return nil, ErrNoEndpoints
	}
	return res, nil
}
