package node

import (
	"fmt"
	"sort"
	"strings"

	cpb "metropolis.dev/metropolis/proto/common"
)

// Node labels follow the syntax of Kubernetes labels, so that they can be
// copied onto Kubernetes node objects unchanged.
const (
	// MaxLabelsPerNode bounds the labels of one node, which keeps node
	// records and the messages carrying them small.
	MaxLabelsPerNode = 128
	// maxLabelNameLength is the limit of a label value and of the name part
	// of a label key.
	maxLabelNameLength = 63
	// maxLabelPrefixLength is the limit of the DNS prefix of a label key.
	maxLabelPrefixLength = 253
)

// ValidateLabelKey checks that key is a valid node label key: a name of 1 to
// 63 characters out of [a-zA-Z0-9._-] which starts and ends with a letter or
// digit, optionally preceded by a DNS subdomain and a slash, as in
// "example.com/rack".
func ValidateLabelKey(key string) error {
	name := key
	if prefix, rest, found := strings.Cut(key, "/"); found {
		if err := validateLabelPrefix(prefix); err != nil {
			return fmt.Errorf("label key %q: %w", key, err)
		}
		name = rest
	}
	if name == "" {
		return fmt.Errorf("label key %q: name is empty", key)
	}
	if err := validateLabelName(name); err != nil {
		return fmt.Errorf("label key %q: %w", key, err)
	}
	return nil
}

// ValidateLabelValue checks that value is a valid node label value: empty,
// or 1 to 63 characters out of [a-zA-Z0-9._-] which start and end with a
// letter or digit.
func ValidateLabelValue(value string) error {
	if value == "" {
		return nil
	}
	if err := validateLabelName(value); err != nil {
		return fmt.Errorf("label value %q: %w", value, err)
	}
	return nil
}

func validateLabelName(s string) error {
	if len(s) > maxLabelNameLength {
		return fmt.Errorf("longer than %d characters", maxLabelNameLength)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case isAlnum(c):
		case c == '.' || c == '_' || c == '-':
			if i == 0 || i == len(s)-1 {
				return fmt.Errorf("must start and end with a letter or digit")
			}
		default:
			return fmt.Errorf("contains %q; only letters, digits and . _ - are allowed", c)
		}
	}
	return nil
}

// validateLabelPrefix checks a DNS subdomain (RFC 1123, lowercase).
func validateLabelPrefix(prefix string) error {
	if prefix == "" {
		return fmt.Errorf("prefix before '/' is empty")
	}
	if len(prefix) > maxLabelPrefixLength {
		return fmt.Errorf("prefix longer than %d characters", maxLabelPrefixLength)
	}
	for _, part := range strings.Split(prefix, ".") {
		if err := validateDNSLabel(part); err != nil {
			return fmt.Errorf("prefix %q: %w", prefix, err)
		}
	}
	return nil
}

// validateDNSLabel checks one dot-separated part of a lowercase RFC 1123
// host name.
func validateDNSLabel(s string) error {
	if s == "" {
		return fmt.Errorf("empty DNS label")
	}
	if len(s) > 63 {
		return fmt.Errorf("DNS label %q is longer than 63 characters", s)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case c == '-':
			if i == 0 || i == len(s)-1 {
				return fmt.Errorf("DNS label %q must not start or end with '-'", s)
			}
		default:
			return fmt.Errorf("DNS label %q contains %q; only lowercase letters, digits and '-' are allowed", s, c)
		}
	}
	return nil
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// GetNodeLabel returns the value of the label key of labels, or "" if it is
// not set.
func GetNodeLabel(labels *cpb.NodeLabels, key string) string {
	for _, p := range labels.GetPairs() {
		if p.Key == key {
			return p.Value
		}
	}
	return ""
}

// Labels are node labels as a map from key to value.
type Labels map[string]string

// LabelsFromProto converts labels into a map. Of duplicate keys, the last
// wins.
func LabelsFromProto(labels *cpb.NodeLabels) Labels {
	l := make(Labels, len(labels.GetPairs()))
	for _, p := range labels.GetPairs() {
		l[p.Key] = p.Value
	}
	return l
}

// Proto returns l as a NodeLabels message, sorted by key so that equal label
// sets always encode the same.
func (l Labels) Proto() *cpb.NodeLabels {
	keys := make([]string, 0, len(l))
	for k := range l {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	res := &cpb.NodeLabels{Pairs: make([]*cpb.NodeLabels_Pair, 0, len(keys))}
	for _, k := range keys {
		res.Pairs = append(res.Pairs, &cpb.NodeLabels_Pair{Key: k, Value: l[k]})
	}
	return res
}

// Validate checks every key and value and the number of labels.
func (l Labels) Validate() error {
	if len(l) > MaxLabelsPerNode {
		return fmt.Errorf("%d labels, at most %d are allowed", len(l), MaxLabelsPerNode)
	}
	for k, v := range l {
		if err := ValidateLabelKey(k); err != nil {
			return err
		}
		if err := ValidateLabelValue(v); err != nil {
			return err
		}
	}
	return nil
}
