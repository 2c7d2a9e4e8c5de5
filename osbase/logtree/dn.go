package logtree

import (
	"fmt"
	"strings"
)

// DN is the distinguished name of a node in the log tree: dot-separated,
// non-empty parts, eg. "root.network.dhcp". The empty DN is the root of the
// tree, and the parent of every other DN.
type DN string

// Path returns the parts of the DN, or an error if the DN is malformed (has an
// empty part, including a leading or trailing dot). The root DN "" has an empty
// path.
func (d DN) Path() ([]string, error) {
	if d == "" {
		return []string{}, nil
	}
	parts := strings.Split(string(d), ".")
	for i, p := range parts {
		if p == "" {
			return nil, fmt.Errorf("invalid DN %q: part %d is empty", string(d), i)
		}
	}
	return parts, nil
}
