package nanoswitch

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
)

// testEtherType marks the frames of the fault tests, to tell them from the
// router's own.
const testEtherType = 0x88b5

func numberedFrame(src tcpip.LinkAddress, n uint32) []byte {
	f := make([]byte, header.EthernetMinimumSize+4)
	header.Ethernet(f).Encode(&header.EthernetFields{SrcAddr: src, DstAddr: header.EthernetBroadcastAddress, Type: testEtherType})
	binary.BigEndian.PutUint32(f[header.EthernetMinimumSize:], n)
	return f
}

func frameNumber(f []byte) uint32 {
	return binary.BigEndian.Uint32(f[header.EthernetMinimumSize:])
}

func isTestFrame(f []byte) bool {
	return len(f) == header.EthernetMinimumSize+4 && header.Ethernet(f).Type() == testEtherType
}

// TestFaultFrames sends numbered frames from port "from" to port "to" with a
// fault on one of them, then a last frame without it, and checks which
// arrive, in which order and when.
func TestFaultFrames(t *testing.T) {
	const sent = 200
	const last = sent
	for _, tc := range []struct {
		name     string
		faulty   string
		fault    Fault
		min, max int // frames of the sent ones that must arrive
	}{
		{"none", "to", Fault{}, sent, sent},
		{"cut receiver", "to", Fault{Cut: true}, 0, 0},
		{"cut sender", "from", Fault{Cut: true}, 0, 0},
		{"drop all", "to", Fault{DropRate: 1}, 0, 0},
		// Binomial(200, 0.5) is outside [50, 150] with probability < 1e-12.
		{"drop half", "from", Fault{DropRate: 0.5}, 50, 150},
		{"delay receiver", "to", Fault{Delay: 100 * time.Millisecond}, sent, sent},
		{"delay sender", "from", Fault{Delay: 100 * time.Millisecond}, sent, sent},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, _ := newSwitch(t, Config{}, true)
			ports := map[string]*rawPort{}
			for _, name := range []string{"from", "to"} {
				path, err := s.AddPort(name)
				if err != nil {
					t.Fatal(err)
				}
				ports[name] = dialPort(t, path)
			}
			waitConnected(t, s, "to")
			src := tcpip.LinkAddress("\x02\x00\x00\x00\x00\x01")

			if err := s.SetFault(tc.faulty, tc.fault); err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			for i := range uint32(sent) {
				ports["from"].send(t, numberedFrame(src, i))
			}
			// The fault applies to all of them only if the switch took them
			// before it is cleared.
			pollUntil(t, "switch reading the frames", func() error {
				if n := s.ports["from"].framesIn.Load(); n != sent {
					return fmt.Errorf("%d frames read", n)
				}
				return nil
			})
			if err := s.SetFault(tc.faulty, Fault{}); err != nil {
				t.Fatal(err)
			}
			ports["from"].send(t, numberedFrame(src, last))

			var got []uint32
			for {
				n := frameNumber(ports["to"].receive(t, isTestFrame))
				if len(got) == 0 && tc.fault.Delay > 0 {
					if elapsed := time.Since(start); elapsed < tc.fault.Delay {
						t.Errorf("first frame arrived after %v, want at least %v", elapsed, tc.fault.Delay)
					}
				}
				if n == last {
					break
				}
				if len(got) > 0 && n <= got[len(got)-1] {
					t.Fatalf("frame %d arrived after frame %d", n, got[len(got)-1])
				}
				got = append(got, n)
			}
			if len(got) < tc.min || len(got) > tc.max {
				t.Errorf("%d of %d frames arrived, want %d to %d", len(got), sent, tc.min, tc.max)
			}
		})
	}
}

// TestFaultCutTCP partitions a machine and heals it again.
func TestFaultCutTCP(t *testing.T) {
	s, _ := startEchoMachine(t)
	dial := func(timeout time.Duration) error {
		ctx, cancel := context.WithTimeout(t.Context(), timeout)
		defer cancel()
		c, err := s.DialContext(ctx, "tcp", "10.1.0.2:7835")
		if err != nil {
			return err
		}
		c.Close()
		return nil
	}
	if err := dial(waitTimeout); err != nil {
		t.Fatalf("before the cut: %v", err)
	}
	if err := s.SetFault("node0", Fault{Cut: true}); err != nil {
		t.Fatal(err)
	}
	if err := dial(2 * time.Second); err == nil {
		t.Fatal("dialing a cut-off machine succeeded")
	}
	if err := s.SetFault("node0", Fault{}); err != nil {
		t.Fatal(err)
	}
	pollUntil(t, "dialing the machine after the cut healed", func() error { return dial(2 * time.Second) })
}

func TestSetFaultErrors(t *testing.T) {
	s, _ := newSwitch(t, Config{}, false)
	if _, err := s.AddPort("node0"); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		port    string
		fault   Fault
		wantErr string // "" for success
	}{
		{"clear", "node0", Fault{}, ""},
		{"all fields", "node0", Fault{DropRate: 0.25, Delay: time.Second, Cut: true}, ""},
		{"drop everything", "node0", Fault{DropRate: 1}, ""},
		{"negative drop rate", "node0", Fault{DropRate: -0.1}, "not between 0 and 1"},
		{"drop rate above 1", "node0", Fault{DropRate: 1.5}, "not between 0 and 1"},
		{"drop rate NaN", "node0", Fault{DropRate: math.NaN()}, "not between 0 and 1"},
		{"negative delay", "node0", Fault{Delay: -time.Second}, "negative"},
		{"unknown port", "node9", Fault{}, "no port"},
		{"router", "router", Fault{Cut: true}, "no port"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := s.SetFault(tc.port, tc.fault)
			if tc.wantErr == "" {
				if err != nil {
					t.Errorf("SetFault: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("SetFault: %v, want error with %q", err, tc.wantErr)
			}
		})
	}
}
