package main

import (
	"fmt"
	"os"
	"strings"

	"metropolis.dev/osbase/bootparam"
)

// cmdlinePath is the kernel command line.
const cmdlinePath = "/proc/cmdline"

// paramDNSCheck names a host name the node resolves through its own
// resolver once it has an address, logging the answer: a check of the
// whole DNS path (the node's resolver, the network's name servers from
// DHCP or the static configuration) that an operator or a test reads on
// the console.
const paramDNSCheck = "metropolis.dns_check"

// knobs are what the node takes from its kernel command line. The command
// line is part of the signed kernel image, so only whoever signs the
// node's images sets them.
type knobs struct {
	// dnsCheck is the host name to resolve, empty for none.
	dnsCheck string
}

// readKnobs reads the knobs from the kernel command line at path.
func readKnobs(path string) (knobs, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return knobs{}, err
	}
	return parseKnobs(string(b))
}

func parseKnobs(cmdline string) (knobs, error) {
	var k knobs
	c, err := bootparam.Parse(cmdline)
	if err != nil {
		return k, err
	}
	name, ok, err := c.Lookup(paramDNSCheck)
	if err != nil {
		return k, err
	}
	if ok {
		if err := validHostName(name); err != nil {
			return k, fmt.Errorf("%s=%q: %w", paramDNSCheck, name, err)
		}
		k.dnsCheck = name
	}
	return k, nil
}

// validHostName checks that name is a DNS name made of letters, digits,
// hyphens and dots, as short as DNS requires.
func validHostName(name string) error {
	name = strings.TrimSuffix(name, ".")
	if name == "" || len(name) > 253 {
		return fmt.Errorf("not a host name of 1 to 253 characters")
	}
	for _, label := range strings.Split(name, ".") {
		if label == "" || len(label) > 63 {
			return fmt.Errorf("label %q is not 1 to 63 characters long", label)
		}
		for _, c := range label {
			if (c < 'a' || c > 'z') && (c < 'A' || c > 'Z') && (c < '0' || c > '9') && c != '-' {
				return fmt.Errorf("label %q has a character other than letters, digits and hyphens", label)
			}
		}
	}
	return nil
}
