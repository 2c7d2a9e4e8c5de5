package dns

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
)

// WriteResolvConf writes a resolv.conf(5) at path naming servers, for the
// C library and Go's resolver to find the local DNS server. It replaces the
// file atomically, so readers see either the old or the new file.
func WriteResolvConf(path string, servers ...netip.Addr) error {
	if len(servers) == 0 {
		return fmt.Errorf("writing %s: no name servers", path)
	}
	var b strings.Builder
	for _, s := range servers {
		fmt.Fprintf(&b, "nameserver %s\n", s.WithZone(""))
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".resolv.conf-*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.WriteString(b.String()); err != nil {
		tmp.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}
