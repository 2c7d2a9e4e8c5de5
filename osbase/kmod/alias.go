package kmod

import (
	"bufio"
	"fmt"
	"io"
	"slices"
	"strings"
)

// aliasIndex finds the modules whose alias patterns match a string.
//
// A node matches every device it finds against every alias of every
// module, so lookups have to be cheap. Nearly every pattern starts with
// literal text (its bus and usually a vendor ID, "pci:v00001AF4d"), and a
// pattern can only match strings that start with that literal prefix.
// Patterns are therefore grouped by prefix in a map, and a lookup only
// tries the groups whose prefix is a prefix of the string: one map access
// per distinct prefix length, followed by full matching of the few
// patterns in the hit groups.
type aliasIndex struct {
	byPrefix map[string][]aliasEntry
	// prefixLens holds every distinct prefix length, ascending.
	prefixLens []int
}

type aliasEntry struct {
	pattern *Pattern
	module  string
}

func newAliasIndex() *aliasIndex {
	return &aliasIndex{byPrefix: make(map[string][]aliasEntry)}
}

func (x *aliasIndex) add(pat, module string) error {
	p, err := CompilePattern(pat)
	if err != nil {
		return fmt.Errorf("alias %q of %s: %w", pat, module, err)
	}
	if _, ok := x.byPrefix[p.prefix]; !ok {
		i, found := slices.BinarySearch(x.prefixLens, len(p.prefix))
		if !found {
			x.prefixLens = slices.Insert(x.prefixLens, i, len(p.prefix))
		}
	}
	x.byPrefix[p.prefix] = append(x.byPrefix[p.prefix], aliasEntry{pattern: p, module: module})
	return nil
}

// lookup returns the names of the modules with an alias matching s, sorted
// and without duplicates.
func (x *aliasIndex) lookup(s string) []string {
	var mods []string
	for _, n := range x.prefixLens {
		if n > len(s) {
			break
		}
		for _, e := range x.byPrefix[s[:n]] {
			if e.pattern.matchRest(s[n:]) {
				mods = append(mods, e.module)
			}
		}
	}
	slices.Sort(mods)
	return slices.Compact(mods)
}

// parseAliases reads a modules.alias file into x. Each line is
//
//	alias PATTERN MODULE
//
// and empty lines and lines starting with # are ignored.
func (x *aliasIndex) parse(r io.Reader) error {
	s := bufio.NewScanner(r)
	for line := 1; s.Scan(); line++ {
		text := strings.TrimSpace(s.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		f := strings.Fields(text)
		if len(f) != 3 || f[0] != "alias" {
			return fmt.Errorf("line %d: want \"alias PATTERN MODULE\", got %q", line, text)
		}
		if err := x.add(f[1], normalizeName(f[2])); err != nil {
			return fmt.Errorf("line %d: %w", line, err)
		}
	}
	return s.Err()
}
