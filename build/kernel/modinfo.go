package kernel

import (
	"bytes"
	"debug/elf"
	"fmt"
	"io"
	"strings"
)

// modinfo holds the key=value records of a module's .modinfo ELF section,
// in which the kernel build stores a module's name, the modules it needs
// (depends=), the modules it would like loaded around it (softdep=), the
// device aliases it drives (alias=) and the kernel it was built for
// (vermagic=). Keys may repeat: alias and softdep in particular.
type modinfo map[string][]string

// readModinfo reads the .modinfo section of the module file r.
func readModinfo(r io.ReaderAt) (modinfo, error) {
	f, err := elf.NewFile(r)
	if err != nil {
		return nil, err
	}
	sec := f.Section(".modinfo")
	if sec == nil {
		return nil, fmt.Errorf("no .modinfo section")
	}
	data, err := sec.Data()
	if err != nil {
		return nil, fmt.Errorf("reading .modinfo: %w", err)
	}
	return parseModinfo(data)
}

// parseModinfo parses the contents of a .modinfo section: NUL-terminated
// key=value strings, sometimes separated by extra NUL padding.
func parseModinfo(data []byte) (modinfo, error) {
	info := make(modinfo)
	for _, rec := range bytes.Split(data, []byte{0}) {
		if len(rec) == 0 {
			continue
		}
		key, value, ok := strings.Cut(string(rec), "=")
		if !ok || key == "" {
			return nil, fmt.Errorf("malformed .modinfo record %q", rec)
		}
		info[key] = append(info[key], value)
	}
	return info, nil
}

// get returns the value of a key that occurs at most once.
func (m modinfo) get(key string) (string, error) {
	switch v := m[key]; len(v) {
	case 0:
		return "", nil
	case 1:
		return v[0], nil
	default:
		return "", fmt.Errorf("%s= appears %d times", key, len(v))
	}
}

// depends returns the names listed in depends=.
func (m modinfo) depends() ([]string, error) {
	v, err := m.get("depends")
	if err != nil || v == "" {
		return nil, err
	}
	return strings.Split(v, ","), nil
}
