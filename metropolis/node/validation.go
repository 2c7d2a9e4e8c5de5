package node

import (
	"fmt"
	"strings"
)

// maxClusterDomainLength leaves room below DNS's 253-character limit for the
// names that are built inside the cluster domain.
const maxClusterDomainLength = 80

// ValidateClusterDomain checks that domain is usable as a cluster's DNS
// domain: a lowercase RFC 1123 host name of at most 80 characters whose last
// label is not a number, so that it can never be mistaken for an IP address.
func ValidateClusterDomain(domain string) error {
	if domain == "" {
		return fmt.Errorf("cluster domain is empty")
	}
	if len(domain) > maxClusterDomainLength {
		return fmt.Errorf("cluster domain is %d characters long, at most %d are allowed", len(domain), maxClusterDomainLength)
	}
	parts := strings.Split(domain, ".")
	for _, part := range parts {
		if err := validateDNSLabel(part); err != nil {
			return fmt.Errorf("cluster domain %q: %w", domain, err)
		}
	}
	last := parts[len(parts)-1]
	if strings.Trim(last, "0123456789") == "" {
		return fmt.Errorf("cluster domain %q: last label %q must not be a number", domain, last)
	}
	return nil
}
