package logtree

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"google.golang.org/protobuf/types/known/timestamppb"

	lpb "metropolis.dev/osbase/logtree/proto"
)

// Proto converts the entry to its wire form. Strings which are not valid UTF-8
// (which protobuf strings must be) have invalid sequences replaced by U+FFFD.
func (e *LogEntry) Proto() *lpb.LogEntry {
	p := &lpb.LogEntry{Dn: validUTF8(string(e.DN))}
	switch {
	case e.Leveled != nil:
		l := e.Leveled
		lines := make([]string, len(l.messages))
		for i, m := range l.messages {
			lines[i] = validUTF8(m)
		}
		p.Kind = &lpb.LogEntry_Leveled{Leveled: &lpb.Leveled{
			Lines:     lines,
			Timestamp: timestamppb.New(l.timestamp),
			Severity:  severityToProto(l.severity),
			Location:  validUTF8(l.Location()),
		}}
	case e.Raw != nil:
		p.Kind = &lpb.LogEntry_Raw{Raw: &lpb.Raw{
			Data:           validUTF8(e.Raw.data),
			OriginalLength: int64(len(e.Raw.data)),
			Timestamp:      timestamppb.New(e.Raw.timestamp),
		}}
	}
	return p
}

// LogEntryFromProto converts a wire-form entry back into a LogEntry. It
// rejects entries which could not have been produced by Proto: a malformed DN,
// not exactly one payload, an unknown severity, a missing or invalid leveled
// timestamp, a malformed location or a line containing a newline. The
// timestamp of raw entries is optional, as earlier producers did not set it.
func LogEntryFromProto(p *lpb.LogEntry) (*LogEntry, error) {
	if p == nil {
		return nil, errors.New("log entry is nil")
	}
	dn := DN(p.Dn)
	if _, err := dn.Path(); err != nil {
		return nil, err
	}
	switch k := p.Kind.(type) {
	case *lpb.LogEntry_Leveled:
		if k.Leveled == nil {
			return nil, errors.New("leveled payload is nil")
		}
		payload, err := leveledFromProto(k.Leveled)
		if err != nil {
			return nil, fmt.Errorf("leveled payload: %w", err)
		}
		return &LogEntry{DN: dn, Leveled: payload}, nil
	case *lpb.LogEntry_Raw:
		if k.Raw == nil {
			return nil, errors.New("raw payload is nil")
		}
		payload, err := rawFromProto(k.Raw)
		if err != nil {
			return nil, fmt.Errorf("raw payload: %w", err)
		}
		return &LogEntry{DN: dn, Raw: payload}, nil
	case nil:
		return nil, errors.New("log entry has neither leveled nor raw payload")
	default:
		return nil, fmt.Errorf("unknown payload type %T", k)
	}
}

func leveledFromProto(l *lpb.Leveled) (*LeveledPayload, error) {
	sev, err := severityFromProto(l.Severity)
	if err != nil {
		return nil, err
	}
	if l.Timestamp == nil {
		return nil, errors.New("timestamp missing")
	}
	if err := l.Timestamp.CheckValid(); err != nil {
		return nil, fmt.Errorf("invalid timestamp: %w", err)
	}
	if len(l.Lines) == 0 {
		return nil, errors.New("no message lines")
	}
	for i, line := range l.Lines {
		if strings.IndexByte(line, '\n') >= 0 {
			return nil, fmt.Errorf("line %d contains a newline", i)
		}
	}
	var file string
	var line int
	if l.Location != "" {
		file, line, err = parseLocation(l.Location)
		if err != nil {
			return nil, err
		}
	}
	return &LeveledPayload{
		timestamp: l.Timestamp.AsTime(),
		severity:  sev,
		messages:  l.Lines,
		file:      file,
		line:      line,
	}, nil
}

func rawFromProto(r *lpb.Raw) (*RawPayload, error) {
	if strings.IndexByte(r.Data, '\n') >= 0 {
		return nil, errors.New("data contains a newline")
	}
	var ts time.Time
	if r.Timestamp != nil {
		if err := r.Timestamp.CheckValid(); err != nil {
			return nil, fmt.Errorf("invalid timestamp: %w", err)
		}
		ts = r.Timestamp.AsTime()
	}
	return &RawPayload{timestamp: ts, data: r.Data}, nil
}

// parseLocation parses a "file:line" location.
func parseLocation(loc string) (string, int, error) {
	i := strings.LastIndexByte(loc, ':')
	if i <= 0 {
		return "", 0, fmt.Errorf("invalid location %q: want file:line", loc)
	}
	line, err := strconv.Atoi(loc[i+1:])
	if err != nil || line < 0 {
		return "", 0, fmt.Errorf("invalid location %q: bad line number", loc)
	}
	return loc[:i], line, nil
}

func severityToProto(s Severity) lpb.Severity {
	switch s {
	case INFO:
		return lpb.Severity_INFO
	case WARNING:
		return lpb.Severity_WARNING
	case ERROR:
		return lpb.Severity_ERROR
	case FATAL:
		return lpb.Severity_FATAL
	}
	return lpb.Severity_SEVERITY_INVALID
}

func severityFromProto(s lpb.Severity) (Severity, error) {
	switch s {
	case lpb.Severity_INFO:
		return INFO, nil
	case lpb.Severity_WARNING:
		return WARNING, nil
	case lpb.Severity_ERROR:
		return ERROR, nil
	case lpb.Severity_FATAL:
		return FATAL, nil
	}
	return 0, fmt.Errorf("invalid severity %v", s)
}

func validUTF8(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}
