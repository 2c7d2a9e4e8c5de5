package consensus

import (
	"context"
	"log/slog"
	"slices"
	"strings"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"metropolis.dev/osbase/logtree"
)

// newZapLogger returns a zap logger for etcd that writes into the log tree
// through l.
//
// etcd logs a lot at the info level: every start prints dozens of lines with
// dozens of fields each, and every raft step is logged. Warnings and errors
// are kept, except for a few that are not worth one (see quietWarnings), and
// so are the few info messages that say how the cluster changes (see
// keptInfo). All other info messages are logged at verbosity 1 and debug
// messages at verbosity 2, so they are there for whoever raises the
// verbosity of the DN, and cost nothing otherwise.
func newZapLogger(l logtree.LeveledLogger) *zap.Logger {
	return zap.New(&zapCore{handler: logtree.NewSlogHandler(l)}, zap.AddCaller())
}

// keptInfo are parts of etcd's info messages that are worth logging without
// raising the verbosity: membership and leadership changes.
var keptInfo = []string{
	"added member",
	"removed member",
	"promote member",
	"became leader",
	"elected leader",
	"changed leader",
	"lost leader",
}

// quietWarnings are parts of etcd's warnings that say nothing worth a
// warning here: that clients and the HTTP gateway share the client socket,
// that auth tokens are not signed while auth is disabled, that the client
// socket was closed when etcd stopped, and that the client retries a request,
// which returns an error anyway if retrying does not help. They are logged
// at verbosity 1 instead.
var quietWarnings = []string{
	"Running http and grpc server on single port",
	"simple token is not cryptographically signed",
	"insecure grpc server due to error",
	"retrying of unary invoker failed",
}

func containsAny(s string, parts []string) bool {
	return slices.ContainsFunc(parts, func(p string) bool { return strings.Contains(s, p) })
}

// zapCore is a zapcore.Core that passes entries on to a slog.Handler, which
// keeps their source location.
type zapCore struct {
	handler slog.Handler
	// fields were added with With, and go with every entry.
	fields []zapcore.Field
}

// Levels below slog.LevelInfo are what logtree's slog handler emits only at
// raised verbosity: slog.LevelDebug is V(1), every 4 levels below one more.
const (
	levelVerbose     = slog.LevelDebug
	levelVeryVerbose = slog.LevelDebug - 4
)

func (c *zapCore) level(e zapcore.Entry) slog.Level {
	switch {
	case e.Level >= zapcore.ErrorLevel:
		return slog.LevelError
	case e.Level == zapcore.WarnLevel:
		if containsAny(e.Message, quietWarnings) {
			return levelVerbose
		}
		return slog.LevelWarn
	case e.Level == zapcore.InfoLevel:
		if containsAny(e.Message, keptInfo) {
			return slog.LevelInfo
		}
		return levelVerbose
	default:
		return levelVeryVerbose
	}
}

// Enabled only filters by level; Check also knows the message.
func (c *zapCore) Enabled(level zapcore.Level) bool {
	if level >= zapcore.InfoLevel {
		return true
	}
	return c.handler.Enabled(context.Background(), levelVeryVerbose)
}

func (c *zapCore) With(fields []zapcore.Field) zapcore.Core {
	return &zapCore{handler: c.handler, fields: append(slices.Clip(c.fields), fields...)}
}

func (c *zapCore) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.handler.Enabled(context.Background(), c.level(e)) {
		return ce.AddCore(e, c)
	}
	return ce
}

func (c *zapCore) Write(e zapcore.Entry, fields []zapcore.Field) error {
	r := slog.NewRecord(e.Time, c.level(e), e.Message, e.Caller.PC)
	if e.LoggerName != "" {
		r.AddAttrs(slog.String("logger", e.LoggerName))
	}
	enc := zapcore.NewMapObjectEncoder()
	for _, f := range slices.Concat(c.fields, fields) {
		f.AddTo(enc)
		if v, ok := enc.Fields[f.Key]; ok {
			r.AddAttrs(slog.Any(f.Key, v))
			delete(enc.Fields, f.Key)
		}
	}
	return c.handler.Handle(context.Background(), r)
}

func (c *zapCore) Sync() error {
	return nil
}
