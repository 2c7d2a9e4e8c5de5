package bootparam

import (
	"fmt"
	"strings"
)

// Param is one parameter of the command line: key=value, or just key.
type Param struct {
	Key   string
	Value string
	// HasValue tells "key=" (an empty value) from "key" alone.
	HasValue bool
}

// Cmdline is a parsed kernel command line.
type Cmdline struct {
	// Params are the kernel's parameters, in order.
	Params []Param
	// InitArgs are the words after "--", which the kernel passes to init.
	InitArgs []string
}

// isSpace is the kernel's isspace for the ASCII range the command line
// uses.
func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r'
}

// Parse parses a kernel command line, such as the content of /proc/cmdline
// (whose trailing newline is white space like any other).
func Parse(s string) (*Cmdline, error) {
	var c Cmdline
	words, err := split(s)
	if err != nil {
		return nil, err
	}
	for i, w := range words {
		if w == "--" {
			for _, a := range words[i+1:] {
				c.InitArgs = append(c.InitArgs, strings.Trim(a, `"`))
			}
			break
		}
		p, err := parseParam(w)
		if err != nil {
			return nil, err
		}
		c.Params = append(c.Params, p)
	}
	return &c, nil
}

// split cuts s at white space outside double quotes, keeping the quotes.
func split(s string) ([]string, error) {
	var words []string
	start := -1
	inQuote := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"':
			inQuote = !inQuote
		case isSpace(c) && !inQuote:
			if start >= 0 {
				words = append(words, s[start:i])
				start = -1
			}
			continue
		}
		if start < 0 {
			start = i
		}
	}
	if inQuote {
		return nil, fmt.Errorf("unbalanced double quote in kernel command line")
	}
	if start >= 0 {
		words = append(words, s[start:])
	}
	return words, nil
}

// parseParam splits one word into key and value and removes the quotes the
// kernel removes: a quote opening the word or the value, and the matching
// quote closing the word.
func parseParam(w string) (Param, error) {
	orig := w
	quotedWord := strings.HasPrefix(w, `"`)
	if quotedWord {
		w = w[1:]
	}
	var p Param
	if i := strings.IndexByte(w, '='); i >= 0 {
		p.Key, p.Value, p.HasValue = w[:i], w[i+1:], true
		if !quotedWord && strings.HasPrefix(p.Value, `"`) {
			p.Value = p.Value[1:]
			quotedWord = true
		}
	} else {
		p.Key = w
	}
	if quotedWord {
		last := &p.Key
		if p.HasValue {
			last = &p.Value
		}
		if !strings.HasSuffix(*last, `"`) {
			return Param{}, fmt.Errorf("parameter %q: text after closing quote", orig)
		}
		*last = (*last)[:len(*last)-1]
	}
	if strings.Contains(p.Key, `"`) || strings.Contains(p.Value, `"`) {
		return Param{}, fmt.Errorf("parameter %q: quote in the middle of a key or value", orig)
	}
	if p.Key == "" {
		return Param{}, fmt.Errorf("parameter %q: empty key", orig)
	}
	return p, nil
}

// Lookup returns the value of the parameter key and whether it is present.
// Keys are compared exactly. A key that occurs more than once is an error.
func (c *Cmdline) Lookup(key string) (value string, ok bool, err error) {
	for _, p := range c.Params {
		if p.Key != key {
			continue
		}
		if ok {
			return "", false, fmt.Errorf("parameter %s given more than once", key)
		}
		value, ok = p.Value, true
	}
	return value, ok, nil
}
