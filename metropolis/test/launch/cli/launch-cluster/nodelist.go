package main

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// parseNodeList parses a list of node indices such as "0,3-5" for a cluster
// of numNodes nodes: comma-separated indices and inclusive ranges, each
// index below numNodes. It returns them sorted, without duplicates; the
// empty string is the empty list.
func parseNodeList(s string, numNodes int) ([]int, error) {
	if s == "" {
		return nil, nil
	}
	var res []int
	for part := range strings.SplitSeq(s, ",") {
		first, last, isRange := strings.Cut(part, "-")
		lo, err := parseNodeIndex(first, numNodes)
		if err != nil {
			return nil, fmt.Errorf("%q: %w", part, err)
		}
		hi := lo
		if isRange {
			if hi, err = parseNodeIndex(last, numNodes); err != nil {
				return nil, fmt.Errorf("%q: %w", part, err)
			}
			if hi < lo {
				return nil, fmt.Errorf("%q: the range ends before it starts", part)
			}
		}
		for i := lo; i <= hi; i++ {
			res = append(res, i)
		}
	}
	slices.Sort(res)
	return slices.Compact(res), nil
}

// parseNodeIndex parses one node index of a cluster of numNodes nodes.
func parseNodeIndex(s string, numNodes int) (int, error) {
	if s == "" {
		return 0, fmt.Errorf("empty node index; write indices like 0,3-5")
	}
	// Only digits: Atoi would also take signs.
	if strings.TrimLeft(s, "0123456789") != "" {
		return 0, fmt.Errorf("node index %q is not a number", s)
	}
	i, err := strconv.Atoi(s)
	if err != nil || i >= numNodes {
		return 0, fmt.Errorf("node %s does not exist: the cluster has nodes 0 to %d", s, numNodes-1)
	}
	return i, nil
}
