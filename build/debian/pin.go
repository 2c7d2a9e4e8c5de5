package debian

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
)

// PinFile is the name of the pin file in a third_party/<input>/ directory.
const PinFile = "pins.txt"

// A Pin names one exact Debian binary package: the file apt downloads for it
// must have the given sha256, or it is not used.
type Pin struct {
	// Package is the binary package name, for example
	// linux-image-6.1.0-56-amd64.
	Package string
	// Version is the exact Debian version, including any epoch and
	// revision, for example 6.1.192-2.
	Version string
	// Arch is the Debian architecture, for example amd64 or all.
	Arch string
	// SHA256 is the lowercase hex sha256 of the .deb file.
	SHA256 string
}

// String names the pin the way apt-get accepts it on its command line.
func (p Pin) String() string {
	return p.Package + ":" + p.Arch + "=" + p.Version
}

// FileName is the name under which the package is cached. It follows
// Debian's pool naming, which escapes an epoch's colon as %3a.
func (p Pin) FileName() string {
	return p.Package + "_" + strings.ReplaceAll(p.Version, ":", "%3a") + "_" + p.Arch + ".deb"
}

// The syntax of the fields, from Debian Policy §5.6.1 (package names) and
// §5.6.12 (versions); architecture names are lowercase words with dashes.
// Pins become command-line arguments and file names, so only what Debian
// allows gets through.
var (
	packageRE = regexp.MustCompile(`^[a-z0-9][a-z0-9+.-]+$`)
	versionRE = regexp.MustCompile(`^([0-9]+:)?[0-9][A-Za-z0-9.+~-]*$`)
	archRE    = regexp.MustCompile(`^[a-z0-9][a-z0-9-]*$`)
	sha256RE  = regexp.MustCompile(`^[0-9a-f]{64}$`)
)

// Validate checks that every field of the pin is well-formed.
func (p Pin) Validate() error {
	for _, f := range []struct {
		name, value string
		re          *regexp.Regexp
	}{
		{"package name", p.Package, packageRE},
		{"version", p.Version, versionRE},
		{"architecture", p.Arch, archRE},
		{"sha256", p.SHA256, sha256RE},
	} {
		if !f.re.MatchString(f.value) {
			return fmt.Errorf("invalid %s %q", f.name, f.value)
		}
	}
	return nil
}

// ReadPins reads a pin file. It is a text file with one package per line,
//
//	PACKAGE VERSION ARCHITECTURE SHA256
//
// separated by spaces or tabs. Empty lines and lines starting with # are
// ignored. A package may be pinned only once per file.
func ReadPins(path string) ([]Pin, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading pins: %w", err)
	}
	defer f.Close()
	pins, err := ParsePins(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return pins, nil
}

// ParsePins parses the contents of a pin file (see ReadPins).
func ParsePins(r io.Reader) ([]Pin, error) {
	var pins []Pin
	seen := make(map[string]bool)
	s := bufio.NewScanner(r)
	for line := 1; s.Scan(); line++ {
		text := strings.TrimSpace(s.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		fields := strings.Fields(text)
		if len(fields) != 4 {
			return nil, fmt.Errorf("line %d: want 4 fields (package version architecture sha256), got %d", line, len(fields))
		}
		p := Pin{Package: fields[0], Version: fields[1], Arch: fields[2], SHA256: fields[3]}
		if err := p.Validate(); err != nil {
			return nil, fmt.Errorf("line %d: %w", line, err)
		}
		if seen[p.Package] {
			return nil, fmt.Errorf("line %d: package %s pinned twice", line, p.Package)
		}
		seen[p.Package] = true
		pins = append(pins, p)
	}
	if err := s.Err(); err != nil {
		return nil, err
	}
	return pins, nil
}
