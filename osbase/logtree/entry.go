package logtree

import (
	"strconv"
	"strings"
	"time"
)

// LogEntry is a single entry in the log tree. Exactly one of Leveled and Raw
// is set.
//
// Entries are shared between the tree and all its readers and must therefore
// be treated as read-only.
type LogEntry struct {
	// DN of the logger which emitted this entry.
	DN DN
	// Leveled is set if the entry was emitted by a leveled logger.
	Leveled *LeveledPayload
	// Raw is set if the entry is a raw line, eg. from a child process.
	Raw *RawPayload

	// seq orders entries across all DNs of a tree. It is assigned when the
	// entry is appended and is zero for entries that were never part of a
	// tree (eg. ones decoded from a proto).
	seq uint64
}

// LeveledPayload is a log entry emitted through a LeveledLogger. Its fields are
// only accessible through getters, because payloads are shared between
// readers and must not be modified.
type LeveledPayload struct {
	timestamp time.Time
	severity  Severity
	// messages is the message split into lines, never empty.
	messages []string
	file     string
	line     int
}

// Timestamp at which the entry was emitted.
func (p *LeveledPayload) Timestamp() time.Time { return p.timestamp }

// Severity of the entry.
func (p *LeveledPayload) Severity() Severity { return p.severity }

// Messages returns the message split into lines (without trailing newlines).
// A message always has at least one, possibly empty, line. The returned slice
// must not be modified.
func (p *LeveledPayload) Messages() []string { return p.messages }

// MessagesJoined returns the message as one newline-separated string.
func (p *LeveledPayload) MessagesJoined() string { return strings.Join(p.messages, "\n") }

// File is the base name of the source file of the logging call, or empty if
// unknown.
func (p *LeveledPayload) File() string { return p.file }

// Line is the source line of the logging call, or zero if unknown.
func (p *LeveledPayload) Line() int { return p.line }

// Location returns "file:line" of the logging call, or an empty string if
// unknown.
func (p *LeveledPayload) Location() string {
	if p.file == "" {
		return ""
	}
	return p.file + ":" + strconv.Itoa(p.line)
}

// RawPayload is a single line of unstructured output written to a raw logger.
type RawPayload struct {
	timestamp time.Time
	data      string
}

// Timestamp at which the line was completed (ie. its newline was written).
func (p *RawPayload) Timestamp() time.Time { return p.timestamp }

// Data is the line, without its trailing newline.
func (p *RawPayload) Data() string { return p.data }

// fullTimestampLayout mirrors the glog header, which operators and tooling
// already know how to read.
const fullTimestampLayout = "0102 15:04:05.000000"

// Text returns what the entry says without any metadata: the message lines of
// a leveled entry joined by newlines, or the line of a raw one. Log consumers
// that match on content (tests, filters) use it instead of String.
func (e *LogEntry) Text() string {
	switch {
	case e.Leveled != nil:
		return e.Leveled.MessagesJoined()
	case e.Raw != nil:
		return e.Raw.Data()
	}
	return ""
}

// String returns the full, multi-line textual form of the entry: for every
// line of the message,
//
//	DN I0228 13:30:45.996960 file.go:48] message
//
// with the letter being the severity, or 'R' for raw entries.
func (e *LogEntry) String() string {
	var b strings.Builder
	switch {
	case e.Leveled != nil:
		p := e.Leveled
		var prefix []byte
		prefix = append(prefix, e.DN...)
		prefix = append(prefix, ' ')
		prefix = append(prefix, p.severity.String()...)
		prefix = p.timestamp.AppendFormat(prefix, fullTimestampLayout)
		prefix = append(prefix, ' ')
		prefix = append(prefix, p.Location()...)
		prefix = append(prefix, "] "...)
		for i, m := range p.messages {
			if i > 0 {
				b.WriteByte('\n')
			}
			b.Write(prefix)
			b.WriteString(m)
		}
	case e.Raw != nil:
		var prefix []byte
		prefix = append(prefix, e.DN...)
		prefix = append(prefix, " R"...)
		prefix = e.Raw.timestamp.AppendFormat(prefix, fullTimestampLayout)
		prefix = append(prefix, "] "...)
		b.Write(prefix)
		b.WriteString(e.Raw.data)
	default:
		b.WriteString(string(e.DN))
		b.WriteString(" INVALID")
	}
	return b.String()
}
