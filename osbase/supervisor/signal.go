package supervisor

import (
	"context"
	"fmt"
)

// SignalType is what a runnable tells the supervisor about itself.
type SignalType int

const (
	// SignalHealthy tells that the runnable is up and serving. It keeps
	// running until its context is canceled.
	SignalHealthy SignalType = iota
	// SignalDone tells that the runnable has finished its work or has
	// finished starting its children, and is about to return nil.
	SignalDone
)

func (s SignalType) String() string {
	switch s {
	case SignalHealthy:
		return "Healthy"
	case SignalDone:
		return "Done"
	}
	return fmt.Sprintf("SignalType(%d)", int(s))
}

// Signal tells the supervisor about the runnable owning ctx. It returns once
// the supervisor has taken note, so a Snapshot taken afterwards reflects it.
// Signals which do not move the runnable forward (Healthy after Done, or any
// signal after it was stopped) are ignored.
func Signal(ctx context.Context, s SignalType) {
	if s != SignalHealthy && s != SignalDone {
		panic(fmt.Sprintf("supervisor.Signal: invalid signal %v", s))
	}
	in := instanceFrom(ctx, "Signal")
	done := make(chan struct{})
	if in.sup.send(&signalMsg{inst: in, signal: s, done: done}) {
		<-done
	}
}

type signalMsg struct {
	inst   *instance
	signal SignalType
	done   chan struct{}
}

func (m *signalMsg) apply(p *processor) {
	defer close(m.done)
	n := m.inst.node
	if m.inst != n.inst {
		return
	}
	switch {
	case m.signal == SignalHealthy && n.state == StateNew:
		p.setState(n, StateHealthy, "signalled Healthy")
	case m.signal == SignalDone && (n.state == StateNew || n.state == StateHealthy):
		p.setState(n, StateDone, "signalled Done")
	}
}
