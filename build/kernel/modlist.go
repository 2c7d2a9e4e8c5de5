package kernel

import (
	"bufio"
	"fmt"
	"os"
	"strings"
)

// ReadModuleList reads a list of module names, one per line. A # starts a
// comment that runs to the end of the line; empty lines are ignored.
func ReadModuleList(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading module list: %w", err)
	}
	defer f.Close()
	var names []string
	seen := make(map[string]bool)
	s := bufio.NewScanner(f)
	for line := 1; s.Scan(); line++ {
		text, _, _ := strings.Cut(s.Text(), "#")
		fields := strings.Fields(text)
		switch len(fields) {
		case 0:
			continue
		case 1:
		default:
			return nil, fmt.Errorf("%s:%d: want one module name, got %q", path, line, text)
		}
		name := normalizeName(fields[0])
		if seen[name] {
			return nil, fmt.Errorf("%s:%d: module %s listed twice", path, line, name)
		}
		seen[name] = true
		names = append(names, name)
	}
	if err := s.Err(); err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	return names, nil
}
