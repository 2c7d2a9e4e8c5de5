package logtree

import (
	"context"
	"log/slog"
	"strconv"
	"time"
	"unicode"
	"unicode/utf8"
)

// SlogFor returns a log/slog logger writing to dn. It panics if dn is
// malformed, like MustLeveledFor.
func (l *LogTree) SlogFor(dn DN) *slog.Logger {
	return slog.New(NewSlogHandler(l.MustLeveledFor(dn)))
}

// NewSlogHandler returns a slog.Handler which writes records as leveled
// entries to l, so that code and libraries using log/slog log into the tree.
//
// Levels map to severities: slog.LevelError and above to ERROR,
// slog.LevelWarn and above to WARNING, slog.LevelInfo and above to INFO.
// Levels below slog.LevelInfo map to verbosity levels, slog.LevelDebug being
// V(1) and every further 4 levels (slog's spacing) one more, and are emitted
// with INFO severity if the DN's verbosity allows. Attributes are appended to
// the message as key=value, with keys in groups prefixed by the group names
// ("group.key=value") and values quoted if they contain spaces or special
// characters.
//
// Entries are attributed to the record's source location only if l was
// obtained from a LogTree; other implementations attribute them to the
// handler.
func NewSlogHandler(l LeveledLogger) slog.Handler {
	return &slogHandler{logger: l}
}

type slogHandler struct {
	logger LeveledLogger
	// attrs is the rendered form of attributes added with WithAttrs,
	// appended to every message.
	attrs string
	// group is the key prefix from WithGroup, eg. "a.b.", for attributes
	// added later.
	group string
}

// slogVerbosity maps a slog level below slog.LevelInfo to a verbosity level.
func slogVerbosity(level slog.Level) VerbosityLevel {
	return VerbosityLevel((int(slog.LevelInfo-level) + 3) / 4)
}

func (h *slogHandler) Enabled(_ context.Context, level slog.Level) bool {
	if level >= slog.LevelInfo {
		return true
	}
	return h.logger.V(slogVerbosity(level)).Enabled()
}

func (h *slogHandler) Handle(_ context.Context, r slog.Record) error {
	msg := make([]byte, 0, len(r.Message)+len(h.attrs)+16*r.NumAttrs())
	msg = append(msg, r.Message...)
	msg = append(msg, h.attrs...)
	r.Attrs(func(a slog.Attr) bool {
		msg = appendAttr(msg, h.group, a)
		return true
	})

	sev := INFO
	switch {
	case r.Level >= slog.LevelError:
		sev = ERROR
	case r.Level >= slog.LevelWarn:
		sev = WARNING
	}
	if ll, ok := h.logger.(*leveledLogger); ok {
		ts := r.Time
		if ts.IsZero() {
			ts = time.Now()
		}
		ll.emitAt(sev, ts, r.PC, string(msg))
		return nil
	}
	switch sev {
	case ERROR:
		h.logger.Error(string(msg))
	case WARNING:
		h.logger.Warning(string(msg))
	default:
		h.logger.Info(string(msg))
	}
	return nil
}

func (h *slogHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	if len(attrs) == 0 {
		return h
	}
	b := []byte(h.attrs)
	for _, a := range attrs {
		b = appendAttr(b, h.group, a)
	}
	return &slogHandler{logger: h.logger, attrs: string(b), group: h.group}
}

func (h *slogHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	return &slogHandler{logger: h.logger, attrs: h.attrs, group: h.group + name + "."}
}

// appendAttr appends " prefix.key=value" for a, or for every attribute of a
// group, following the slog.Handler rules for empty attributes and groups.
func appendAttr(b []byte, prefix string, a slog.Attr) []byte {
	a.Value = a.Value.Resolve()
	if a.Equal(slog.Attr{}) {
		return b
	}
	if a.Value.Kind() == slog.KindGroup {
		if a.Key != "" {
			prefix = prefix + a.Key + "."
		}
		for _, ga := range a.Value.Group() {
			b = appendAttr(b, prefix, ga)
		}
		return b
	}
	b = append(b, ' ')
	b = appendMaybeQuoted(b, prefix+a.Key)
	b = append(b, '=')
	if a.Value.Kind() == slog.KindTime {
		return a.Value.Time().AppendFormat(b, time.RFC3339Nano)
	}
	return appendMaybeQuoted(b, a.Value.String())
}

// appendMaybeQuoted appends s, quoted if it would otherwise be ambiguous in a
// space-separated key=value list.
func appendMaybeQuoted(b []byte, s string) []byte {
	if needsQuoting(s) {
		return strconv.AppendQuote(b, s)
	}
	return append(b, s...)
}

func needsQuoting(s string) bool {
	if s == "" {
		return true
	}
	for _, r := range s {
		if r == ' ' || r == '=' || r == '"' || r == utf8.RuneError || !unicode.IsPrint(r) {
			return true
		}
	}
	return false
}
