package supervisor

import (
	"context"
	"fmt"
	"io"
	"log/slog"

	"metropolis.dev/osbase/logtree"
)

// DN returns the distinguished name of the runnable owning ctx, which is also
// its DN in the log tree.
func DN(ctx context.Context) logtree.DN {
	return instanceFrom(ctx, "DN").node.dn
}

// LogTree returns the log tree the supervisor of ctx logs into.
func LogTree(ctx context.Context) *logtree.LogTree {
	return instanceFrom(ctx, "LogTree").sup.lt
}

// Logger returns the leveled logger of the runnable owning ctx.
func Logger(ctx context.Context) logtree.LeveledLogger {
	in := instanceFrom(ctx, "Logger")
	return in.sup.lt.MustLeveledFor(in.node.dn)
}

// Slog returns the log of the runnable owning ctx as a *slog.Logger, for
// libraries which log through log/slog.
func Slog(ctx context.Context) *slog.Logger {
	in := instanceFrom(ctx, "Slog")
	return in.sup.lt.SlogFor(in.node.dn)
}

// RawLogger returns a writer which logs every line written to it as a raw
// entry of the runnable owning ctx, eg. for the output of a library which
// writes unstructured text. Every call returns a new writer which keeps its own
// partial line, so use one writer per stream of output.
func RawLogger(ctx context.Context) io.Writer {
	in := instanceFrom(ctx, "RawLogger")
	return in.sup.lt.MustRawFor(in.node.dn)
}

// SubLogger returns a leveled logger for a part of the runnable owning ctx,
// with the DN of the runnable followed by name. The name is reserved for the
// current incarnation of the runnable: it cannot be used again, neither for
// another sub-logger nor for a child.
func SubLogger(ctx context.Context, name string) (logtree.LeveledLogger, error) {
	in := instanceFrom(ctx, "SubLogger")
	if err := validateName(name); err != nil {
		return nil, err
	}
	reply := make(chan error, 1)
	if !in.sup.send(&reserveMsg{inst: in, name: name, reply: reply}) {
		return nil, errStopped
	}
	if err := <-reply; err != nil {
		return nil, err
	}
	return in.sup.lt.LeveledFor(in.node.dn + "." + logtree.DN(name))
}

// MustSubLogger is SubLogger for names known to be valid and unused. It
// panics otherwise.
func MustSubLogger(ctx context.Context, name string) logtree.LeveledLogger {
	l, err := SubLogger(ctx, name)
	if err != nil {
		panic(err)
	}
	return l
}

// reserveMsg reserves a name below a runnable for a sub-logger.
type reserveMsg struct {
	inst  *instance
	name  string
	reply chan error
}

func (m *reserveMsg) apply(p *processor) {
	n := m.inst.node
	switch {
	case m.inst != n.inst:
		m.reply <- fmt.Errorf("%s has been restarted since this context was handed out", n.dn)
	case n.names[m.name]:
		m.reply <- fmt.Errorf("%s already has a child or sub-logger named %q", n.dn, m.name)
	default:
		n.names[m.name] = true
		m.reply <- nil
	}
}
