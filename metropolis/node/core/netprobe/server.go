package netprobe

import (
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strconv"
	"sync"
	"time"

	"metropolis.dev/metropolis/node"
	"metropolis.dev/osbase/logtree"
	"metropolis.dev/osbase/supervisor"
)

// Defaults of the Server's limits.
const (
	// defaultIdleTimeout is how long a read may wait for data before the
	// connection is closed.
	defaultIdleTimeout = 10 * time.Second
	// defaultMaxDuration bounds a whole connection. It allows MaxBytes at
	// about 1.2 MB/s, slower than any network worth probing with that much.
	defaultMaxDuration = 15 * time.Minute
	// defaultMaxConnections is how many probes are received at once.
	defaultMaxConnections = 4
	// refusalLogInterval is the shortest time between two log entries about
	// refused connections of the same kind.
	refusalLogInterval = 10 * time.Second
)

// Server receives probes sent by Send. Run it as a supervisor runnable.
type Server struct {
	// Allowed decides which source addresses may send probes; connections
	// from others are closed at once. IPv4 sources are passed as IPv4
	// addresses, also when the server listens on a dual-stack socket.
	// Required.
	Allowed func(netip.Addr) bool
	// ListenAddress is the host:port to listen on. Empty means
	// node.NetworkProbePort on every address.
	ListenAddress string

	// Limits, the defaults above if zero. Tests shorten them.
	idleTimeout    time.Duration
	maxDuration    time.Duration
	maxConnections int
}

// Run listens and receives probes until ctx is done.
func (s *Server) Run(ctx context.Context) error {
	if s.Allowed == nil {
		return errors.New("no Allowed function given")
	}
	address := s.ListenAddress
	if address == "" {
		address = net.JoinHostPort("", strconv.Itoa(node.NetworkProbePort))
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", address)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", address, err)
	}
	return s.serve(ctx, ln)
}

// serve receives probes on ln until ctx is done or accepting fails, then
// closes ln, cuts off the probes in flight and waits for them to end.
func (s *Server) serve(ctx context.Context, ln net.Listener) error {
	logger := supervisor.Logger(ctx)
	defer ln.Close()
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()

	var inFlight sync.WaitGroup
	defer inFlight.Wait()
	// Probes in flight end with serve, also when it fails.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	slots := make(chan struct{}, cmp.Or(s.maxConnections, defaultMaxConnections))
	// Refused connections are logged with their source, but sparsely: the
	// port is open to the whole network, and whoever can reach it must not
	// be able to flood the node's log. The source still helps to tell a
	// scanner from a cluster node missing from Allowed.
	var notAllowed, busy refusalLog

	logger.Infof("Receiving probes on %s", ln.Addr())
	supervisor.Signal(ctx, supervisor.SignalHealthy)
	for {
		conn, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("accepting: %w", err)
		}
		tcpAddr, _ := conn.RemoteAddr().(*net.TCPAddr)
		source := tcpAddr.AddrPort().Addr().Unmap()
		if !s.Allowed(source) {
			notAllowed.log(logger, time.Now(), "Refused probe from %s: source address not allowed", source)
			conn.Close()
			continue
		}
		select {
		case slots <- struct{}{}:
		default:
			busy.log(logger, time.Now(), "Refused probe from %s: already receiving %d probes", source, cap(slots))
			conn.Close()
			continue
		}
		inFlight.Go(func() {
			defer func() { <-slots }()
			s.handle(ctx, logger, conn, source)
		})
	}
}

// handle receives one probe on conn and closes it.
func (s *Server) handle(ctx context.Context, logger logtree.LeveledLogger, conn net.Conn, source netip.Addr) {
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()

	start := time.Now()
	received, err := s.receive(conn)
	switch {
	case ctx.Err() != nil:
		// Cut off as the server stops, not the sender's fault.
	case err != nil:
		logger.Warningf("Probe from %s failed: %v", source, err)
	default:
		logger.Infof("Received probe of %d bytes from %s in %v", received, source, time.Since(start))
	}
}

// receive reads a probe's header and payload from conn and answers it. It
// returns the number of payload bytes received.
func (s *Server) receive(conn net.Conn) (uint64, error) {
	idle := cmp.Or(s.idleTimeout, defaultIdleTimeout)
	maxDuration := cmp.Or(s.maxDuration, defaultMaxDuration)
	end := time.Now().Add(maxDuration)
	// deadline is when the next read or write must be done by.
	deadline := func() time.Time {
		if d := time.Now().Add(idle); d.Before(end) {
			return d
		}
		return end
	}
	// explain names the limit a timed out read or write ran into.
	explain := func(err error) error {
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			return err
		}
		if time.Now().Before(end) {
			return fmt.Errorf("no progress for %v: %w", idle, err)
		}
		return fmt.Errorf("connection open longer than %v: %w", maxDuration, err)
	}

	if err := conn.SetReadDeadline(deadline()); err != nil {
		return 0, fmt.Errorf("setting read deadline: %w", err)
	}
	var header [headerSize]byte
	if _, err := io.ReadFull(conn, header[:]); err != nil {
		return 0, fmt.Errorf("reading header: %w", explain(err))
	}
	length, err := parseHeader(header[:])
	if err != nil {
		return 0, fmt.Errorf("bad header: %w", err)
	}

	buf := make([]byte, min(length, bufferSize))
	var received uint64
	for received < length {
		if err := conn.SetReadDeadline(deadline()); err != nil {
			return received, fmt.Errorf("setting read deadline: %w", err)
		}
		n, err := conn.Read(buf[:min(uint64(len(buf)), length-received)])
		received += uint64(n)
		if err != nil && received < length {
			return received, fmt.Errorf("reading payload after %d of %d bytes: %w", received, length, explain(err))
		}
	}

	if err := conn.SetWriteDeadline(deadline()); err != nil {
		return received, fmt.Errorf("setting write deadline: %w", err)
	}
	if _, err := conn.Write(binary.BigEndian.AppendUint64(nil, received)); err != nil {
		return received, fmt.Errorf("writing answer: %w", explain(err))
	}
	return received, nil
}

// refusalLog logs one kind of refused connection at most once per
// refusalLogInterval, counting those it leaves out. It is only used by the
// accept loop, so it needs no lock.
type refusalLog struct {
	last       time.Time
	suppressed int
}

// log logs a refusal at now, unless another was logged less than
// refusalLogInterval ago.
func (r *refusalLog) log(logger logtree.LeveledLogger, now time.Time, format string, args ...any) {
	ok, suppressed := r.note(now)
	if !ok {
		return
	}
	msg := fmt.Sprintf(format, args...)
	if suppressed > 0 {
		msg += fmt.Sprintf(" (and %d more since the last such message)", suppressed)
	}
	logger.WithAddedStackDepth(1).Info(msg)
}

// note records a refusal at now. It returns whether to log it and, if so,
// how many refusals were not logged since the last one that was.
func (r *refusalLog) note(now time.Time) (bool, int) {
	if !r.last.IsZero() && now.Sub(r.last) < refusalLogInterval {
		r.suppressed++
		return false, 0
	}
	suppressed := r.suppressed
	r.last, r.suppressed = now, 0
	return true, suppressed
}
