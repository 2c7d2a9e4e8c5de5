package nanoswitch

import (
	"fmt"
	"math/rand/v2"
	"time"
)

// Fault degrades the link of one port, in both directions. The zero Fault is
// a healthy link.
type Fault struct {
	// DropRate is the probability, from 0 to 1, that a frame is dropped.
	DropRate float64
	// Delay is added to every frame's latency. Frames keep their order.
	Delay time.Duration
	// Cut drops every frame, partitioning the port from the network.
	Cut bool
}

func (f Fault) validate() error {
	// Written so that NaN fails too.
	if !(f.DropRate >= 0 && f.DropRate <= 1) {
		return fmt.Errorf("drop rate %v is not between 0 and 1", f.DropRate)
	}
	if f.Delay < 0 {
		return fmt.Errorf("delay %v is negative", f.Delay)
	}
	return nil
}

// drops decides whether the fault drops one frame.
func (f Fault) drops() bool {
	return f.Cut || (f.DropRate > 0 && rand.Float64() < f.DropRate)
}

// SetFault applies f to the frames to and from the named port, replacing its
// previous fault; the zero Fault clears it. It applies to frames the switch
// forwards from then on.
func (s *Switch) SetFault(port string, f Fault) error {
	if err := f.validate(); err != nil {
		return fmt.Errorf("fault for port %q: %w", port, err)
	}
	s.mu.Lock()
	p, ok := s.ports[port]
	s.mu.Unlock()
	if !ok {
		return fmt.Errorf("no port %q", port)
	}
	p.fault.Store(&f)
	s.log.Info("Port fault set", "port", port, "dropRate", f.DropRate, "delay", f.Delay, "cut", f.Cut)
	return nil
}
