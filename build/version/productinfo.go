package version

import (
	"encoding/json"
	"fmt"
	"strings"

	nodeversion "metropolis.dev/metropolis/version"
)

// The identity of the node's operating system in /etc/os-release and
// /etc/product-info.json.
const (
	ProductName = "Metropolis"
	ProductID   = "metropolis-node"
)

// ProductInfo returns the product information of a node image of this
// version.
func (v Version) ProductInfo() nodeversion.ProductInfo {
	return nodeversion.ProductInfo{
		ID:                  ProductID,
		Name:                ProductName,
		Version:             v.String(),
		Release:             v.Release,
		CommitsSinceRelease: v.CommitsSinceRelease,
		Commit:              v.Commit,
		Dirty:               v.Dirty,
	}
}

// ProductInfoJSON returns the content of /etc/product-info.json.
func (v Version) ProductInfoJSON() ([]byte, error) {
	b, err := json.MarshalIndent(v.ProductInfo(), "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encoding product info: %w", err)
	}
	return append(b, '\n'), nil
}

// OSRelease returns the content of /etc/os-release (see os-release(5)),
// which the UKI also carries in its .osrel section for boot loaders to show.
func (v Version) OSRelease() []byte {
	fields := []struct{ key, value string }{
		{"NAME", ProductName},
		{"ID", ProductID},
		{"VERSION", v.String()},
		{"VERSION_ID", v.String()},
		{"PRETTY_NAME", ProductName + " " + v.String()},
		{"BUILD_ID", v.Commit},
	}
	var b strings.Builder
	for _, f := range fields {
		fmt.Fprintf(&b, "%s=%s\n", f.key, quoteOSRelease(f.value))
	}
	return []byte(b.String())
}

// quoteOSRelease quotes a value the way os-release(5) asks for: in double
// quotes, with the characters special to a shell escaped by a backslash,
// so that the file can also be sourced by a shell.
func quoteOSRelease(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		if strings.ContainsRune("\"\\$`", r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	b.WriteByte('"')
	return b.String()
}
