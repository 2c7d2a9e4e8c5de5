package logtree

import (
	"strings"
	"unicode/utf8"
)

// ShortenDictionary shortens the parts of DNs in console output, where the
// width of a line is precious. Entries are applied in order as substring
// replacements on every part of a DN, so longer forms should precede shorter
// ones they contain.
type ShortenDictionary []ShortenDictionaryEntry

// ShortenDictionaryEntry replaces From by To in DN parts.
type ShortenDictionaryEntry struct {
	From string
	To   string
}

// MetropolisShortenDict shortens the DNs of a Metropolis node.
var MetropolisShortenDict = ShortenDictionary{
	{"controlplane", "cplane"},
	{"kubernetes", "k8s"},
	{"networking", "net"},
	{"network", "net"},
	{"interfaces", "ifs"},
	{"controller-manager", "ctrlmgr"},
	{"scheduler", "sched"},
	{"supervisor", "sv"},
}

// Shorten returns dn with each part shortened according to the dictionary.
func (d ShortenDictionary) Shorten(dn DN) string {
	if len(d) == 0 || dn == "" {
		return string(dn)
	}
	parts := strings.Split(string(dn), ".")
	for i, p := range parts {
		for _, e := range d {
			p = strings.ReplaceAll(p, e.From, e.To)
		}
		parts[i] = p
	}
	return strings.Join(parts, ".")
}

// minConciseMessageWidth is the narrowest column ConciseString wraps messages
// into. Below that, wrapped output becomes unreadable, so lines are allowed to
// exceed the requested width instead.
const minConciseMessageWidth = 20

// ConciseString returns a short form of the entry for consoles, as one or more
// lines:
//
//	13:30:45 I net.dhcp: message
//
// with the DN shortened by dict (which may be nil) and the letter being the
// severity, or 'R' for raw entries. Additional message lines, and parts of
// lines wrapped because they are longer than maxWidth characters, follow on
// lines indented to the start of the message. A maxWidth of zero or less
// disables wrapping.
func (e *LogEntry) ConciseString(dict ShortenDictionary, maxWidth int) []string {
	var prefix []byte
	var messages []string
	switch {
	case e.Leveled != nil:
		prefix = e.Leveled.timestamp.AppendFormat(prefix, "15:04:05 ")
		prefix = append(prefix, e.Leveled.severity.String()...)
		messages = e.Leveled.messages
	case e.Raw != nil:
		prefix = e.Raw.timestamp.AppendFormat(prefix, "15:04:05 ")
		prefix = append(prefix, 'R')
		messages = []string{e.Raw.data}
	default:
		return []string{string(e.DN) + ": INVALID"}
	}
	prefix = append(prefix, ' ')
	if e.DN != "" {
		prefix = append(prefix, dict.Shorten(e.DN)...)
		prefix = append(prefix, ": "...)
	}
	prefixWidth := utf8.RuneCount(prefix)
	indent := strings.Repeat(" ", prefixWidth)

	width := 0
	if maxWidth > 0 {
		width = max(maxWidth-prefixWidth, minConciseMessageWidth)
	}
	var lines []string
	for _, m := range messages {
		for _, chunk := range wrap(m, width) {
			if lines == nil {
				lines = append(lines, string(prefix)+chunk)
			} else {
				lines = append(lines, indent+chunk)
			}
		}
	}
	return lines
}

// wrap splits s into chunks of at most width characters, or returns s as is
// if width is zero.
func wrap(s string, width int) []string {
	if width <= 0 || utf8.RuneCountInString(s) <= width {
		return []string{s}
	}
	var chunks []string
	for s != "" {
		end, n := 0, 0
		for end < len(s) && n < width {
			_, size := utf8.DecodeRuneInString(s[end:])
			end += size
			n++
		}
		chunks = append(chunks, s[:end])
		s = s[end:]
	}
	return chunks
}
