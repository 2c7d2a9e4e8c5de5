package consensus

import (
	"errors"
	"strings"
	"testing"

	"go.uber.org/zap"

	"metropolis.dev/osbase/logtree"
)

func TestZapLogger(t *testing.T) {
	for _, c := range []struct {
		name string
		log  func(*zap.Logger)
		// verbosity is the lowest verbosity at which the entry appears.
		verbosity logtree.VerbosityLevel
		severity  logtree.Severity
		// text is what the entry's message has to contain.
		text string
	}{
		{
			name: "warning with fields",
			log: func(l *zap.Logger) {
				l.Warn("peer became inactive", zap.String("peer-id", "abc"), zap.Int("attempt", 3))
			},
			severity: logtree.WARNING,
			text:     "peer became inactive peer-id=abc attempt=3",
		},
		{
			name: "error with fields of With",
			log: func(l *zap.Logger) {
				l.With(zap.String("local-member-id", "def")).Error("failed to apply", zap.Error(errors.New("disk full")))
			},
			severity: logtree.ERROR,
			text:     `failed to apply local-member-id=def error="disk full"`,
		},
		{
			name: "membership change",
			log: func(l *zap.Logger) {
				l.Info("added member", zap.Strings("added-peer-peer-urls", []string{"https://127.0.0.2:7834"}))
			},
			severity: logtree.INFO,
			text:     "added member added-peer-peer-urls=[https://127.0.0.2:7834]",
		},
		{
			name:     "leadership change from raft",
			log:      func(l *zap.Logger) { l.Named("raft").Sugar().Infof("%x became leader at term %d", 0xabc, 2) },
			severity: logtree.INFO,
			text:     "abc became leader at term 2 logger=raft",
		},
		{
			name:      "other information",
			log:       func(l *zap.Logger) { l.Info("starting an etcd server", zap.String("etcd-version", "3.5")) },
			verbosity: 1,
			severity:  logtree.INFO,
			text:      "starting an etcd server etcd-version=3.5",
		},
		{
			name:      "warning not worth one",
			log:       func(l *zap.Logger) { l.Warn("simple token is not cryptographically signed") },
			verbosity: 1,
			severity:  logtree.INFO,
			text:      "simple token is not cryptographically signed",
		},
		{
			name:      "debug",
			log:       func(l *zap.Logger) { l.Debug("sent raft message", zap.String("to", "abc")) },
			verbosity: 2,
			severity:  logtree.INFO,
			text:      "sent raft message to=abc",
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			for verbosity := logtree.VerbosityLevel(0); verbosity <= 2; verbosity++ {
				lt := logtree.New()
				lt.SetVerbosity("etcd", verbosity)
				c.log(newZapLogger(lt.MustLeveledFor("etcd")))

				r, err := lt.Read("etcd", logtree.WithBacklog(logtree.BacklogAllAvailable))
				if err != nil {
					t.Fatal(err)
				}
				if verbosity < c.verbosity {
					if len(r.Backlog) != 0 {
						t.Errorf("at verbosity %d, got %q, want nothing", verbosity, r.Backlog[0].String())
					}
					continue
				}
				if len(r.Backlog) != 1 {
					t.Fatalf("at verbosity %d, got %d entries, want 1", verbosity, len(r.Backlog))
				}
				e := r.Backlog[0].Leveled
				if e.Severity() != c.severity || !strings.Contains(e.MessagesJoined(), c.text) {
					t.Errorf("at verbosity %d, got %s %q, want %s containing %q", verbosity, e.Severity(), e.MessagesJoined(), c.severity, c.text)
				}
				// Entries point at etcd's code, here the test.
				if !strings.HasPrefix(e.Location(), "logging_test.go:") {
					t.Errorf("entry is attributed to %q, want logging_test.go", e.Location())
				}
			}
		})
	}
}
