package netprobe

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"metropolis.dev/osbase/logtree"
	"metropolis.dev/osbase/supervisor"
)

// waitTimeout bounds every wait of these tests for something that should
// happen almost at once.
const waitTimeout = 10 * time.Second

func allowAll(netip.Addr) bool { return true }

// startServer runs s on a new listener on the IPv4 loopback address and
// returns the listener's address and the log tree s logs into. The listener
// is bound before s runs, so connections to it wait in its backlog for s.
func startServer(t *testing.T, s *Server) (netip.AddrPort, *logtree.LogTree) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listening: %v", err)
	}
	_, lt := supervisor.TestHarness(t, func(ctx context.Context) error {
		return s.serve(ctx, ln)
	})
	return ln.Addr().(*net.TCPAddr).AddrPort(), lt
}

// logEntries returns the text of every log entry of lt containing substr.
func logEntries(t *testing.T, lt *logtree.LogTree, substr string) []string {
	t.Helper()
	r, err := lt.Read("", logtree.WithChildren(), logtree.WithBacklog(logtree.BacklogAllAvailable))
	if err != nil {
		t.Fatalf("reading logs: %v", err)
	}
	var found []string
	for _, e := range r.Backlog {
		if text := e.Text(); strings.Contains(text, substr) {
			found = append(found, text)
		}
	}
	return found
}

// waitForLog waits until lt holds an entry containing substr.
func waitForLog(t *testing.T, lt *logtree.LogTree, substr string) {
	t.Helper()
	for deadline := time.Now().Add(waitTimeout); len(logEntries(t, lt, substr)) == 0; {
		if time.Now().After(deadline) {
			t.Fatalf("no log entry containing %q within %v", substr, waitTimeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// dial connects to address and writes data, if any.
func dial(t *testing.T, address netip.AddrPort, data []byte) net.Conn {
	t.Helper()
	conn, err := net.DialTimeout("tcp", address.String(), waitTimeout)
	if err != nil {
		t.Fatalf("connecting: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	if len(data) > 0 {
		if _, err := conn.Write(data); err != nil {
			t.Fatalf("writing: %v", err)
		}
	}
	return conn
}

// expectClosed checks that the server closes conn without an answer.
func expectClosed(t *testing.T, conn net.Conn) {
	t.Helper()
	conn.SetReadDeadline(time.Now().Add(waitTimeout))
	var b [answerSize]byte
	n, err := conn.Read(b[:])
	if n > 0 {
		t.Fatalf("server answered %x, want the connection closed", b[:n])
	}
	// Anything but a timeout means closed: an EOF, or a reset if the server
	// closed with bytes unread.
	if err == nil || isTimeout(err) {
		t.Fatalf("connection still open after %v: %v", waitTimeout, err)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// expectAnswer checks that the server answers on conn confirming want bytes.
func expectAnswer(t *testing.T, conn net.Conn, want uint64) {
	t.Helper()
	conn.SetReadDeadline(time.Now().Add(waitTimeout))
	var b [answerSize]byte
	if _, err := io.ReadFull(conn, b[:]); err != nil {
		t.Fatalf("reading answer: %v", err)
	}
	if got := binary.BigEndian.Uint64(b[:]); got != want {
		t.Fatalf("server confirmed %d bytes, want %d", got, want)
	}
}

// send sends a probe to address, failing the test on error.
func send(t *testing.T, address netip.AddrPort, length uint64, marker []byte) Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	res, err := Send(ctx, address, length, marker)
	if err != nil {
		t.Fatalf("Send(%d bytes): %v", length, err)
	}
	if res.Bytes != length {
		t.Fatalf("Send(%d bytes) confirmed %d", length, res.Bytes)
	}
	if res.Duration <= 0 {
		t.Fatalf("Send(%d bytes) took %v", length, res.Duration)
	}
	return res
}

func TestServerReceives(t *testing.T) {
	var mu sync.Mutex
	var sources []netip.Addr
	address, lt := startServer(t, &Server{Allowed: func(a netip.Addr) bool {
		mu.Lock()
		defer mu.Unlock()
		sources = append(sources, a)
		return true
	}})
	for _, tc := range []struct {
		length uint64
		marker string
	}{
		{1, ""},
		{1, "M"},
		{7, strings.Repeat("0123456789abcdef", 4)},
		{bufferSize - 1, "odd"},
		{bufferSize + 1, ""},
		{3<<20 + 7, "netprobe-marker"},
	} {
		t.Run(strconv.FormatUint(tc.length, 10)+"/"+tc.marker, func(t *testing.T) {
			send(t, address, tc.length, []byte(tc.marker))
			// The server logs after answering, so Send can return first.
			waitForLog(t, lt, "Received probe of "+strconv.FormatUint(tc.length, 10)+" bytes from 127.0.0.1")
		})
	}
	mu.Lock()
	defer mu.Unlock()
	for _, a := range sources {
		if a != netip.MustParseAddr("127.0.0.1") {
			t.Errorf("Allowed called with %v, want 127.0.0.1", a)
		}
	}
}

func TestServerRefusesSource(t *testing.T) {
	address, lt := startServer(t, &Server{Allowed: func(netip.Addr) bool { return false }})
	for range 2 {
		_, err := Send(context.Background(), address, 1000, nil)
		if !errors.Is(err, ErrRefused) {
			t.Fatalf("Send from a refused source: %v, want ErrRefused", err)
		}
	}
	// The server logs before closing, and only the first of two refusals in
	// quick succession.
	if got := logEntries(t, lt, "Refused probe"); len(got) != 1 || !strings.Contains(got[0], "from 127.0.0.1: source address not allowed") {
		t.Errorf("refusals logged as %q, want one entry naming the source", got)
	}
}

func TestServerRefusesBadHeader(t *testing.T) {
	address, lt := startServer(t, &Server{Allowed: allowAll})
	for _, tc := range []struct {
		name   string
		header []byte
		reason string
	}{
		{"bad magic", header("XYZ\x01", 1), "bad magic"},
		{"http", []byte("GET / HTTP/1.1\r\n\r\n"), "bad magic"},
		{"bad version", header("MNP\x07", 1), "unsupported version 7"},
		{"zero length", appendHeader(nil, 0), "payload length 0 out of range"},
		{"over maximum", appendHeader(nil, MaxBytes+1), "out of range"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			expectClosed(t, dial(t, address, tc.header))
			waitForLog(t, lt, tc.reason)
		})
	}
	// Refusals do not harm the server.
	send(t, address, 100, nil)
}

func TestServerDisconnectsStalledSender(t *testing.T) {
	for _, tc := range []struct {
		name        string
		idleTimeout time.Duration
		maxDuration time.Duration
		sent        []byte
		reason      string
	}{
		{"nothing sent", 100 * time.Millisecond, 0, nil, "reading header: no progress for 100ms"},
		{"partial header", 100 * time.Millisecond, 0, appendHeader(nil, 10)[:5], "reading header: no progress for 100ms"},
		{"partial payload", 100 * time.Millisecond, 0, append(appendHeader(nil, 10), 1, 2, 3), "reading payload after 3 of 10 bytes: no progress for 100ms"},
		{"connection too long", time.Minute, 200 * time.Millisecond, append(appendHeader(nil, 10), 1, 2, 3), "reading payload after 3 of 10 bytes: connection open longer than 200ms"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			address, lt := startServer(t, &Server{Allowed: allowAll, idleTimeout: tc.idleTimeout, maxDuration: tc.maxDuration})
			start := time.Now()
			expectClosed(t, dial(t, address, tc.sent))
			limit := tc.idleTimeout
			if tc.maxDuration != 0 {
				limit = min(limit, tc.maxDuration)
			}
			if elapsed := time.Since(start); elapsed < limit {
				t.Errorf("closed after %v, before the limit of %v", elapsed, limit)
			}
			waitForLog(t, lt, tc.reason)
		})
	}
}

func TestServerLimitsConcurrency(t *testing.T) {
	address, lt := startServer(t, &Server{Allowed: allowAll, maxConnections: 2})
	// Two probes which wait for their payload take both slots. The server
	// accepts connections in order, so they have them before the third.
	var held []net.Conn
	for range 2 {
		held = append(held, dial(t, address, appendHeader(nil, 10)))
	}
	if _, err := Send(context.Background(), address, 10, nil); !errors.Is(err, ErrRefused) {
		t.Fatalf("Send beyond the limit: %v, want ErrRefused", err)
	}
	if got := logEntries(t, lt, "already receiving 2 probes"); len(got) != 1 {
		t.Errorf("refusal logged as %q, want one entry", got)
	}
	// The held probes were not affected.
	for _, conn := range held {
		if _, err := conn.Write(make([]byte, 10)); err != nil {
			t.Fatalf("writing payload: %v", err)
		}
		expectAnswer(t, conn, 10)
	}
	// Their slots are freed once the server is done with them, just after
	// answering.
	for deadline := time.Now().Add(waitTimeout); ; {
		_, err := Send(context.Background(), address, 10, nil)
		if err == nil {
			break
		}
		if !errors.Is(err, ErrRefused) || time.Now().After(deadline) {
			t.Fatalf("Send after the held probes finished: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestServerStopsInFlightProbes(t *testing.T) {
	accepted := make(chan struct{}, 1)
	s := &Server{Allowed: func(netip.Addr) bool {
		accepted <- struct{}{}
		return true
	}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listening: %v", err)
	}
	done := make(chan error, 1)
	cancel, _ := supervisor.TestHarness(t, func(ctx context.Context) error {
		err := s.serve(ctx, ln)
		done <- err
		return err
	})
	// A probe waiting for its payload, accepted before the server stops.
	conn := dial(t, ln.Addr().(*net.TCPAddr).AddrPort(), appendHeader(nil, 10))
	select {
	case <-accepted:
	case <-time.After(waitTimeout):
		t.Fatalf("connection not accepted within %v", waitTimeout)
	}
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("serve returned %v, want context.Canceled", err)
		}
	case <-time.After(waitTimeout):
		t.Fatalf("serve still running %v after its context was canceled", waitTimeout)
	}
	expectClosed(t, conn)
}

func TestRun(t *testing.T) {
	// A port free on every address, as Run binds it itself.
	ln, err := net.Listen("tcp", ":0")
	if err != nil {
		t.Fatalf("listening: %v", err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()

	sources := make(chan netip.Addr, 100)
	s := &Server{
		// Listening on every address makes a dual-stack socket, on which
		// IPv4 sources appear as IPv4-mapped IPv6 addresses.
		ListenAddress: ":" + strconv.Itoa(port),
		Allowed: func(a netip.Addr) bool {
			sources <- a
			return true
		},
	}
	supervisor.TestHarness(t, s.Run)

	address := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(port))
	for deadline := time.Now().Add(waitTimeout); ; {
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		_, err := Send(ctx, address, 1000, nil)
		cancel()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Send to the running server: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got := <-sources; got != netip.MustParseAddr("127.0.0.1") {
		t.Errorf("Allowed called with %v, want 127.0.0.1", got)
	}
}

func TestRunWithoutAllowed(t *testing.T) {
	err := (&Server{}).Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "Allowed") {
		t.Errorf("Run without Allowed: %v, want an error naming Allowed", err)
	}
}

func TestRefusalLog(t *testing.T) {
	var r refusalLog
	t0 := time.Unix(1000, 0)
	for _, step := range []struct {
		at             time.Duration
		log            bool
		wantSuppressed int
	}{
		{0, true, 0},
		{time.Second, false, 0},
		{9 * time.Second, false, 0},
		{10 * time.Second, true, 2},
		{11 * time.Second, false, 0},
		{time.Minute, true, 1},
		{2 * time.Minute, true, 0},
	} {
		log, suppressed := r.note(t0.Add(step.at))
		if log != step.log || suppressed != step.wantSuppressed {
			t.Errorf("refusal at %v: log %v with %d suppressed, want %v with %d", step.at, log, suppressed, step.log, step.wantSuppressed)
		}
	}
}
