// Package time keeps the node's clock synchronised with NTP servers.
//
// It is an SNTP client (metropolis.dev/osbase/net/sntp), not a full NTP
// implementation: every poll interval it asks a few servers for the time,
// believes the one whose answer has the smallest error bound (root
// distance), and corrects the clock by that server's offset. Offsets of
// StepThreshold or more are corrected at once (stepped), which also sets the
// hardware clock, so that the next boot starts close to the right time;
// smaller ones are handed to the kernel, which slews the clock gradually
// and learns its drift. This is all a node needs to keep its certificates
// valid and its logs comparable, without running a daemon.
//
// Servers are those the network names (DHCP option 42, or the static
// configuration) or, if it names none, the configured pool. The service
// polls only while the node has an address, and at once when the servers
// change.
package time

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"time"

	"metropolis.dev/metropolis/node/core/network"
	"metropolis.dev/osbase/event"
	"metropolis.dev/osbase/event/memory"
	"metropolis.dev/osbase/net/sntp"
	"metropolis.dev/osbase/supervisor"
)

// Defaults of Config.
const (
	DefaultPollInterval = 5 * time.Minute
	// DefaultStepThreshold is the largest offset the kernel slews in one
	// adjustment.
	DefaultStepThreshold = maxSlew
)

// DefaultPool are the servers asked when the network names none.
var DefaultPool = []string{"pool.ntp.org"}

const (
	// ntpPort is the port of servers given by address or name.
	ntpPort = 123
	// maxServers is how many servers are asked at each poll.
	maxServers = 4
	// queryTimeout is how long to wait for each server's reply.
	queryTimeout = 2 * time.Second
	// firstRetry is the wait after a failed poll, which doubles with each
	// failure up to the poll interval.
	firstRetry = 2 * time.Second
)

// Config configures the time service.
type Config struct {
	// Network is the network service's status.
	Network event.Watchable[*network.Status]
	// Pool are host names of servers used when the network names none.
	// Nil means DefaultPool.
	Pool []string
	// Clock is the clock to correct. Nil means SystemClock with the
	// hardware clock /dev/rtc0.
	Clock Clock
	// PollInterval is the time between polls. Zero means
	// DefaultPollInterval.
	PollInterval time.Duration
	// StepThreshold is the smallest offset that is stepped rather than
	// slewed. Zero means DefaultStepThreshold.
	StepThreshold time.Duration
}

// ClockStatus is the state of the node's clock.
type ClockStatus struct {
	// Synchronized is true if the last poll succeeded.
	Synchronized bool
	// Offset is how far the clock was off at the last successful poll,
	// before it was corrected.
	Offset time.Duration
	// Server is the server the clock was last corrected from.
	Server netip.AddrPort
	// LastSync is when the clock was last corrected.
	LastSync time.Time
}

// Service is the time service. Create it with New.
type Service struct {
	cfg    Config
	status memory.Value[*ClockStatus]
}

// New returns a time service for cfg.
func New(cfg Config) *Service {
	if cfg.Pool == nil {
		cfg.Pool = DefaultPool
	}
	if cfg.Clock == nil {
		cfg.Clock = SystemClock{RTCPath: "/dev/rtc0"}
	}
	if cfg.PollInterval == 0 {
		cfg.PollInterval = DefaultPollInterval
	}
	if cfg.StepThreshold == 0 {
		cfg.StepThreshold = DefaultStepThreshold
	}
	return &Service{cfg: cfg}
}

// Status returns the event value the service publishes the clock's status
// in, after each poll.
func (s *Service) Status() event.Value[*ClockStatus] {
	return &s.status
}

// Run runs the service. It is a supervisor runnable.
func (s *Service) Run(ctx context.Context) error {
	if s.cfg.Network == nil {
		return fmt.Errorf("time: Config.Network is nil")
	}
	networkStatus := make(chan *network.Status)
	if err := supervisor.RunGroup(ctx, map[string]supervisor.Runnable{
		"network": event.Pipe(s.cfg.Network, networkStatus),
		"sync":    s.runSync(networkStatus),
	}); err != nil {
		return err
	}
	supervisor.Signal(ctx, supervisor.SignalDone)
	return nil
}

// runSync polls whenever it is time to, and when the network's servers
// change.
func (s *Service) runSync(networkStatus <-chan *network.Status) supervisor.Runnable {
	return func(ctx context.Context) error {
		log := supervisor.Logger(ctx)
		supervisor.Signal(ctx, supervisor.SignalHealthy)
		var current *network.Status
		var last *ClockStatus
		var next <-chan time.Time
		retry := firstRetry
		for {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case st := <-networkStatus:
				previous := current
				current = st
				if st.ExternalAddress == nil {
					if next != nil {
						log.Infof("The node has no address, pausing synchronisation")
					}
					next = nil
					continue
				}
				if next == nil || !sameServers(previous, st) {
					next = time.After(0)
					retry = firstRetry
				}
			case <-next:
				st, err := s.poll(ctx, current)
				if err != nil {
					log.Warningf("Synchronising the clock failed, retrying in %v: %v", retry, err)
					next = time.After(retry)
					retry = min(2*retry, s.cfg.PollInterval)
					if last != nil && last.Synchronized {
						unsynced := *last
						unsynced.Synchronized = false
						last = &unsynced
						s.status.Set(last)
					}
					continue
				}
				last = st
				s.status.Set(st)
				next = time.After(s.cfg.PollInterval)
				retry = firstRetry
			}
		}
	}
}

// sameServers reports whether two network statuses name the same NTP
// servers.
func sameServers(a, b *network.Status) bool {
	if a == nil || b == nil {
		return a == b
	}
	return slices.EqualFunc(a.NTPServers, b.NTPServers, net.IP.Equal) && slices.Equal(a.NTPServerNames, b.NTPServerNames)
}

// poll asks the servers for the time, corrects the clock from the best
// answer and returns the new status.
func (s *Service) poll(ctx context.Context, st *network.Status) (*ClockStatus, error) {
	log := supervisor.Logger(ctx)
	servers, err := s.servers(ctx, st)
	if err != nil {
		return nil, err
	}
	var best *sntp.Response
	var errs []error
	for _, server := range servers {
		qctx, cancel := context.WithTimeout(ctx, queryTimeout)
		resp, err := sntp.Query(qctx, server)
		cancel()
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if best == nil || resp.RootDistance() < best.RootDistance() {
			best = resp
		}
	}
	if best == nil {
		return nil, fmt.Errorf("no server answered: %v", errs)
	}
	for _, err := range errs {
		log.Warningf("Ignoring NTP server: %v", err)
	}

	offset := best.Offset
	if offset.Abs() >= s.cfg.StepThreshold {
		log.Infof("Clock is off by %v (server %v), stepping it", offset, best.Server)
		if err := s.cfg.Clock.Step(offset); err != nil {
			return nil, err
		}
	} else {
		if err := s.cfg.Clock.Slew(offset, best.RootDistance()); err != nil {
			return nil, err
		}
	}
	return &ClockStatus{Synchronized: true, Offset: offset, Server: best.Server, LastSync: time.Now()}, nil
}

// servers returns the servers to ask: those named by the network, or if
// there are none, those of the pool, resolved to addresses. At most
// maxServers are returned.
func (s *Service) servers(ctx context.Context, st *network.Status) ([]netip.AddrPort, error) {
	var servers []netip.AddrPort
	for _, ip := range st.NTPServers {
		if addr, ok := netip.AddrFromSlice(ip); ok {
			servers = append(servers, netip.AddrPortFrom(addr.Unmap(), ntpPort))
		}
	}
	names := st.NTPServerNames
	if len(servers) == 0 && len(names) == 0 {
		names = s.cfg.Pool
	}
	var errs []error
	for _, name := range names {
		if len(servers) >= maxServers {
			break
		}
		rctx, cancel := context.WithTimeout(ctx, queryTimeout)
		addrs, err := net.DefaultResolver.LookupNetIP(rctx, "ip", name)
		cancel()
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, a := range addrs {
			servers = append(servers, netip.AddrPortFrom(a.Unmap(), ntpPort))
		}
	}
	if len(servers) == 0 {
		return nil, fmt.Errorf("no NTP servers: the network names none, and resolving %v failed: %v", names, errs)
	}
	return servers[:min(len(servers), maxServers)], nil
}
