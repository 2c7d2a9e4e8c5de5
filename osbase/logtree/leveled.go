package logtree

import (
	"fmt"
	"runtime"
	"strings"
	"sync"
	"time"
)

// LeveledLogger is a glog-style logger which writes leveled entries to one DN
// of a log tree.
type LeveledLogger interface {
	Info(args ...any)
	Infof(format string, args ...any)
	Warning(args ...any)
	Warningf(format string, args ...any)
	Error(args ...any)
	Errorf(format string, args ...any)
	// Fatal logs at FATAL severity and then panics with the message. Within a
	// supervision tree, the panic is caught and the runnable restarted, which
	// is the right reaction to an unrecoverable error in one subsystem.
	Fatal(args ...any)
	// Fatalf is the formatting counterpart of Fatal.
	Fatalf(format string, args ...any)

	// V returns a logger which only emits if the DN's verbosity level is at
	// least level.
	V(level VerbosityLevel) VerboseLeveledLogger
	// WithAddedStackDepth returns a logger which attributes entries to a
	// caller depth frames further up the stack. Wrappers around a
	// LeveledLogger use this so that entries point at their callers instead
	// of at the wrapper.
	WithAddedStackDepth(depth int) LeveledLogger
}

// VerboseLeveledLogger is returned by LeveledLogger.V. Its entries have
// INFO severity.
type VerboseLeveledLogger interface {
	// Enabled returns whether entries will be emitted. Use it to skip
	// computing expensive log arguments.
	Enabled() bool
	Info(args ...any)
	Infof(format string, args ...any)
}

// LeveledFor returns a leveled logger writing to dn, or an error if dn is
// malformed.
func (l *LogTree) LeveledFor(dn DN) (LeveledLogger, error) {
	n, err := l.node(dn)
	if err != nil {
		return nil, err
	}
	return &leveledLogger{node: n}, nil
}

// MustLeveledFor is LeveledFor for DNs known to be valid. It panics if dn is
// malformed.
func (l *LogTree) MustLeveledFor(dn DN) LeveledLogger {
	ll, err := l.LeveledFor(dn)
	if err != nil {
		panic(err)
	}
	return ll
}

type leveledLogger struct {
	node *node
	// depth is the number of additional stack frames between the logging
	// method and the call site to attribute entries to.
	depth int
}

func (l *leveledLogger) Info(args ...any) { l.emit(INFO, sprint(args)) }
func (l *leveledLogger) Infof(format string, args ...any) {
	l.emit(INFO, sprintf(format, args))
}
func (l *leveledLogger) Warning(args ...any) { l.emit(WARNING, sprint(args)) }
func (l *leveledLogger) Warningf(format string, args ...any) {
	l.emit(WARNING, sprintf(format, args))
}
func (l *leveledLogger) Error(args ...any) { l.emit(ERROR, sprint(args)) }
func (l *leveledLogger) Errorf(format string, args ...any) {
	l.emit(ERROR, sprintf(format, args))
}

func (l *leveledLogger) Fatal(args ...any) {
	msg := sprint(args)
	l.emit(FATAL, msg)
	panic(msg)
}

func (l *leveledLogger) Fatalf(format string, args ...any) {
	msg := sprintf(format, args)
	l.emit(FATAL, msg)
	panic(msg)
}

func (l *leveledLogger) V(level VerbosityLevel) VerboseLeveledLogger {
	if int32(level) <= l.node.verbosity.Load() {
		return (*verboseLogger)(l)
	}
	return disabledVerboseLogger{}
}

func (l *leveledLogger) WithAddedStackDepth(depth int) LeveledLogger {
	return &leveledLogger{node: l.node, depth: l.depth + depth}
}

// emitSkip is the number of frames between runtime.Callers in emit and the
// caller of a logging method: runtime.Callers, emit and the logging method.
const emitSkip = 3

// emit must be called directly from the exported logging methods, as it
// determines the call site by stack depth.
func (l *leveledLogger) emit(sev Severity, msg string) {
	// pcs stays zero if the stack is not deep enough.
	var pcs [1]uintptr
	runtime.Callers(emitSkip+l.depth, pcs[:])
	l.emitAt(sev, time.Now(), pcs[0], msg)
}

// emitAt appends an entry attributed to the code at pc (if non-zero).
func (l *leveledLogger) emitAt(sev Severity, ts time.Time, pc uintptr, msg string) {
	var loc location
	if pc != 0 {
		loc = locationOf(pc)
	}
	l.node.append(newLeveledEntry(l.node.dn, sev, ts, msg, loc))
}

type verboseLogger leveledLogger

func (v *verboseLogger) Enabled() bool    { return true }
func (v *verboseLogger) Info(args ...any) { (*leveledLogger)(v).emit(INFO, sprint(args)) }
func (v *verboseLogger) Infof(format string, args ...any) {
	(*leveledLogger)(v).emit(INFO, sprintf(format, args))
}

type disabledVerboseLogger struct{}

func (disabledVerboseLogger) Enabled() bool        { return false }
func (disabledVerboseLogger) Info(...any)          {}
func (disabledVerboseLogger) Infof(string, ...any) {}

// sprint is fmt.Sprint without the cost of fmt for the common case of a
// single string argument.
func sprint(args []any) string {
	if len(args) == 1 {
		if s, ok := args[0].(string); ok {
			return s
		}
	}
	return fmt.Sprint(args...)
}

// sprintf is fmt.Sprintf without the cost of fmt for constant messages.
func sprintf(format string, args []any) string {
	if len(args) == 0 && strings.IndexByte(format, '%') < 0 {
		return format
	}
	return fmt.Sprintf(format, args...)
}

// leveledEntry lays out an entry with its payload and a single-line message
// in one allocation.
type leveledEntry struct {
	entry   LogEntry
	payload LeveledPayload
	line    [1]string
}

func newLeveledEntry(dn DN, sev Severity, ts time.Time, msg string, loc location) *LogEntry {
	le := &leveledEntry{}
	le.payload = LeveledPayload{
		timestamp: ts,
		severity:  sev,
		file:      loc.file,
		line:      loc.line,
	}
	msg = strings.TrimRight(msg, "\n")
	if strings.IndexByte(msg, '\n') < 0 {
		le.line[0] = msg
		le.payload.messages = le.line[:]
	} else {
		le.payload.messages = strings.Split(msg, "\n")
	}
	le.entry.DN = dn
	le.entry.Leveled = &le.payload
	return &le.entry
}

type location struct {
	file string
	line int
}

// locationCache maps program counters of logging call sites to their source
// location. Symbolizing a PC is far more expensive than the rest of the
// append path, and the set of call sites in a binary is small and fixed.
var locationCache sync.Map

func locationOf(pc uintptr) location {
	if v, ok := locationCache.Load(pc); ok {
		return v.(location)
	}
	frame, _ := runtime.CallersFrames([]uintptr{pc}).Next()
	file := frame.File
	if i := strings.LastIndexByte(file, '/'); i >= 0 {
		file = file[i+1:]
	}
	loc := location{file: file, line: frame.Line}
	locationCache.Store(pc, loc)
	return loc
}
