package time

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"metropolis.dev/metropolis/node/core/network"
	"metropolis.dev/osbase/event"
	"metropolis.dev/osbase/event/memory"
	"metropolis.dev/osbase/net/netnstest"
	"metropolis.dev/osbase/net/sntp"
	"metropolis.dev/osbase/net/sntp/sntptest"
	"metropolis.dev/osbase/supervisor"
)

// The tests run in a network namespace of their own, where they can run NTP
// servers on port 123 of any loopback address.
func TestMain(m *testing.M) {
	netnstest.Main(m)
}

// correction is a call of a fakeClock's methods.
type correction struct {
	step             bool
	offset, maxError time.Duration
}

// fakeClock records corrections instead of applying them: the tests run on
// a machine whose clock they must not change.
type fakeClock struct {
	mu          sync.Mutex
	corrections []correction
}

func (c *fakeClock) Step(offset time.Duration) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.corrections = append(c.corrections, correction{step: true, offset: offset})
	return nil
}

func (c *fakeClock) Slew(offset, maxError time.Duration) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.corrections = append(c.corrections, correction{offset: offset, maxError: maxError})
	return nil
}

func (c *fakeClock) last() (correction, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.corrections) == 0 {
		return correction{}, 0
	}
	return c.corrections[len(c.corrections)-1], len(c.corrections)
}

type testService struct {
	*Service
	clock   *fakeClock
	network *memory.Value[*network.Status]
}

func startService(t *testing.T, pool ...string) *testService {
	t.Helper()
	netnstest.Require(t)
	ts := &testService{clock: &fakeClock{}, network: &memory.Value[*network.Status]{}}
	ts.Service = New(Config{Network: ts.network, Clock: ts.clock, Pool: pool, PollInterval: time.Hour})
	supervisor.TestHarness(t, ts.Run)
	return ts
}

func (ts *testService) setServers(servers ...string) {
	st := &network.Status{ExternalAddress: net.IPv4(10, 0, 0, 2)}
	for _, s := range servers {
		st.NTPServers = append(st.NTPServers, net.ParseIP(s))
	}
	ts.network.Set(st)
}

// waitForStatus returns the first clock status matching pred.
func (ts *testService) waitForStatus(t *testing.T, what string, pred func(*ClockStatus) bool) *ClockStatus {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	w := ts.Status().Watch()
	defer w.Close()
	st, err := w.Get(ctx, event.Filter(pred))
	if err != nil {
		t.Fatalf("waiting for %s: %v", what, err)
	}
	return st
}

func near(d, want time.Duration) bool {
	return (d - want).Abs() < 50*time.Millisecond
}

func TestStepAndSlew(t *testing.T) {
	ts := startService(t)
	far := sntptest.Start(t, "127.0.0.1:123", 10*time.Second)
	ts.setServers("127.0.0.1")

	st := ts.waitForStatus(t, "a synchronised clock", func(s *ClockStatus) bool { return s.Synchronized })
	if !near(st.Offset, 10*time.Second) || st.Server != far.Addr {
		t.Errorf("status %+v, want an offset of 10s from %v", st, far.Addr)
	}
	if c, n := ts.clock.last(); n != 1 || !c.step || !near(c.offset, 10*time.Second) {
		t.Errorf("%d corrections, the last %+v; want one step by 10s", n, c)
	}

	// New servers are polled at once; a small offset is slewed.
	nearby := sntptest.Start(t, "127.0.0.2:123", 20*time.Millisecond)
	ts.setServers("127.0.0.2")
	st = ts.waitForStatus(t, "a status from the new server", func(s *ClockStatus) bool { return s.Server == nearby.Addr })
	c, n := ts.clock.last()
	if n != 2 || c.step || !near(c.offset, 20*time.Millisecond) {
		t.Errorf("%d corrections, the last %+v; want a slew by 20ms second", n, c)
	}
	// The error bound is the server's root distance: half its root delay
	// plus its root dispersion (1/64 s each), and half the round trip.
	if c.maxError < 23*time.Millisecond || c.maxError > 100*time.Millisecond {
		t.Errorf("slew with maximum error %v, want about 23ms", c.maxError)
	}
	if !near(st.Offset, 20*time.Millisecond) {
		t.Errorf("status offset %v, want 20ms", st.Offset)
	}
}

func TestBestServer(t *testing.T) {
	ts := startService(t)
	sloppy := sntptest.Start(t, "127.0.0.3:123", 5*time.Second)
	sloppy.SetAlter(func(p *sntp.Packet) { p.RootDispersion = 1 << 16 })
	good := sntptest.Start(t, "127.0.0.4:123", 100*time.Millisecond)
	broken := sntptest.Start(t, "127.0.0.5:123", time.Hour)
	broken.SetAlter(func(p *sntp.Packet) { p.Leap = sntp.LeapUnsynchronized })
	ts.setServers("127.0.0.5", "127.0.0.3", "127.0.0.4")

	st := ts.waitForStatus(t, "a synchronised clock", func(s *ClockStatus) bool { return s.Synchronized })
	if st.Server != good.Addr || !near(st.Offset, 100*time.Millisecond) {
		t.Errorf("synchronised to %v with offset %v, want %v (smallest root distance) with 100ms", st.Server, st.Offset, good.Addr)
	}
	for _, s := range []*sntptest.Server{sloppy, good, broken} {
		if s.Queries() == 0 {
			t.Errorf("server %v not asked", s.Addr)
		}
	}
}

func TestFailureAndRecovery(t *testing.T) {
	ts := startService(t)
	server := sntptest.Start(t, "127.0.0.6:123", 0)
	ts.setServers("127.0.0.6")
	first := ts.waitForStatus(t, "a synchronised clock", func(s *ClockStatus) bool { return s.Synchronized })

	// The network changes, to a server which does not answer: the clock is
	// no longer synchronised, but keeps what it knows of its last sync.
	silent := sntptest.Start(t, "127.0.0.7:123", 0)
	silent.SetAnswering(false)
	ts.setServers("127.0.0.7")
	st := ts.waitForStatus(t, "an unsynchronised clock", func(s *ClockStatus) bool { return !s.Synchronized })
	if st.Server != server.Addr || !st.LastSync.Equal(first.LastSync) {
		t.Errorf("status %+v, want the last sync's from %v at %v", st, server.Addr, first.LastSync)
	}

	// It keeps trying, and recovers once the server answers.
	silent.SetAnswering(true)
	st = ts.waitForStatus(t, "a synchronised clock again", func(s *ClockStatus) bool { return s.Synchronized })
	if st.Server != silent.Addr || silent.Queries() < 2 {
		t.Errorf("synchronised to %v after %d queries, want %v after retrying", st.Server, silent.Queries(), silent.Addr)
	}
}

func TestNoAddressNoPolls(t *testing.T) {
	ts := startService(t)
	server := sntptest.Start(t, "127.0.0.8:123", 0)
	ts.network.Set(&network.Status{NTPServers: []net.IP{net.ParseIP("127.0.0.8")}})
	// That nothing happens can only be seen over a while; a poll would
	// come at once.
	time.Sleep(500 * time.Millisecond)
	if n := server.Queries(); n != 0 {
		t.Fatalf("server queried %d times while the node had no address", n)
	}
	ts.setServers("127.0.0.8")
	ts.waitForStatus(t, "a synchronised clock", func(s *ClockStatus) bool { return s.Synchronized })
}

func TestPool(t *testing.T) {
	// Without servers from the network, the pool is used. localhost
	// resolves to loopback addresses through /etc/hosts.
	ts := startService(t, "localhost")
	server := sntptest.Start(t, "127.0.0.1:123", 0)
	ts.setServers()
	st := ts.waitForStatus(t, "a synchronised clock", func(s *ClockStatus) bool { return s.Synchronized })
	if st.Server != server.Addr {
		t.Errorf("synchronised to %v, want the pool's %v", st.Server, server.Addr)
	}
}

func TestSameServers(t *testing.T) {
	a := &network.Status{NTPServers: []net.IP{net.ParseIP("192.0.2.1")}}
	b := &network.Status{NTPServers: []net.IP{net.ParseIP("192.0.2.1").To4()}}
	c := &network.Status{NTPServerNames: []string{"ntp.example.com"}}
	if !sameServers(a, b) || sameServers(a, c) || sameServers(nil, a) || !sameServers(nil, nil) {
		t.Error("sameServers does not compare servers by address and name")
	}
}
