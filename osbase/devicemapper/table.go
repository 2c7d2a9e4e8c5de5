package devicemapper

import (
	"fmt"
	"strconv"
	"strings"
)

// String renders t as a table line, "<start> <length> <type> <parameters>",
// the form dmsetup and the kernel's dm-mod.create= parameter use.
func (t Target) String() string {
	s := fmt.Sprintf("%d %d %s", t.StartSector, t.Length, t.Type)
	if t.Parameters != "" {
		s += " " + t.Parameters
	}
	return s
}

// ParseTarget parses a table line, "<start> <length> <type> [<parameters>]",
// such as one that metropolis.dev/osbase/verity's MappingTable.String
// returns. The parameters are everything after the type, without the
// surrounding white space. The values are not checked beyond their syntax:
// CreateDevice does that.
func ParseTarget(line string) (Target, error) {
	var fields [3]string
	rest := line
	for i := range fields {
		rest = strings.TrimLeft(rest, " \t")
		end := strings.IndexAny(rest, " \t")
		if end < 0 {
			end = len(rest)
		}
		fields[i], rest = rest[:end], rest[end:]
		if fields[i] == "" {
			return Target{}, fmt.Errorf("devicemapper: table line %q: want <start> <length> <type> [<parameters>]", line)
		}
	}
	start, err := strconv.ParseUint(fields[0], 10, 64)
	if err != nil {
		return Target{}, fmt.Errorf("devicemapper: table line %q: start sector: %w", line, err)
	}
	length, err := strconv.ParseUint(fields[1], 10, 64)
	if err != nil {
		return Target{}, fmt.Errorf("devicemapper: table line %q: length: %w", line, err)
	}
	return Target{
		StartSector: start,
		Length:      length,
		Type:        fields[2],
		Parameters:  strings.Trim(rest, " \t"),
	}, nil
}
