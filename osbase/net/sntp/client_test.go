package sntp_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"metropolis.dev/osbase/net/sntp"
	"metropolis.dev/osbase/net/sntp/sntptest"
)

func query(t *testing.T, s *sntptest.Server, timeout time.Duration) (*sntp.Response, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return sntp.Query(ctx, s.Addr)
}

func TestQueryOffset(t *testing.T) {
	for _, offset := range []time.Duration{0, 1500 * time.Millisecond, -time.Hour, 40 * 365 * 24 * time.Hour} {
		t.Run(offset.String(), func(t *testing.T) {
			s := sntptest.Start(t, "127.0.0.1:0", offset)
			resp, err := query(t, s, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			// Loopback round trips take well under the tolerance, even
			// on a busy machine.
			if d := resp.Offset - offset; d < -50*time.Millisecond || d > 50*time.Millisecond {
				t.Errorf("offset %v, want %v", resp.Offset, offset)
			}
			if resp.Delay < 0 || resp.Delay > 100*time.Millisecond {
				t.Errorf("delay %v on loopback", resp.Delay)
			}
			if resp.Stratum != 2 || resp.Server != s.Addr || resp.RootDispersion != 15625*time.Microsecond {
				t.Errorf("response %+v, want stratum 2 from %v with 15.625ms root dispersion", resp, s.Addr)
			}
		})
	}
}

func TestQueryRejects(t *testing.T) {
	for _, tc := range []struct {
		name  string
		alter func(p *sntp.Packet)
		want  string
	}{
		{"wrong origin", func(p *sntp.Packet) { p.OriginTime++ }, "origin timestamp does not match"},
		{"kiss-of-death", func(p *sntp.Packet) {
			p.Stratum = 0
			p.ReferenceID = [4]byte{'R', 'A', 'T', 'E'}
		}, `kiss-of-death "RATE"`},
		{"unsynchronised leap", func(p *sntp.Packet) { p.Leap = sntp.LeapUnsynchronized }, "not synchronised"},
		{"stratum 16", func(p *sntp.Packet) { p.Stratum = 16 }, "stratum 16"},
		{"client mode", func(p *sntp.Packet) { p.Mode = sntp.ModeClient }, "mode 3"},
		{"no receive time", func(p *sntp.Packet) { p.ReceiveTime = 0 }, "timestamp missing"},
		{"sent before received", func(p *sntp.Packet) {
			p.TransmitTime = sntp.TimestampFromTime(p.ReceiveTime.Time().Add(-time.Second))
		}, "before it received"},
		{"root distance", func(p *sntp.Packet) { p.RootDispersion = 17 << 16 }, "root distance"},
		{"unknown version", func(p *sntp.Packet) { p.Version = 0 }, "version 0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := sntptest.Start(t, "127.0.0.1:0", 0)
			s.SetAlter(tc.alter)
			_, err := query(t, s, 500*time.Millisecond)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got error %v, want one containing %q", err, tc.want)
			}
		})
	}

	s := sntptest.Start(t, "127.0.0.1:0", 0)
	s.SetAlter(func(p *sntp.Packet) { p.Stratum = 0; p.ReferenceID = [4]byte{'D', 'E', 'N', 'Y'} })
	_, err := query(t, s, time.Second)
	var kod *sntp.KissOfDeathError
	if !errors.As(err, &kod) || kod.Code != "DENY" {
		t.Errorf("got %v, want a KissOfDeathError with code DENY", err)
	}
}

func TestQueryTimeout(t *testing.T) {
	s := sntptest.Start(t, "127.0.0.1:0", 0)
	s.SetAnswering(false)
	start := time.Now()
	_, err := query(t, s, 200*time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "no reply") {
		t.Errorf("got %v, want a timeout", err)
	}
	if elapsed := time.Since(start); elapsed > 2*time.Second {
		t.Errorf("query returned after %v, long after its deadline", elapsed)
	}
}
