package sntp

import (
	"bytes"
	"testing"
	"time"
)

func TestTimestamp(t *testing.T) {
	for _, tc := range []struct {
		name string
		t    time.Time
		ts   Timestamp
	}{
		{"Unix epoch", time.Unix(0, 0), Timestamp(ntpEpochOffset) << 32},
		{"half a second", time.Unix(0, 500_000_000), Timestamp(ntpEpochOffset)<<32 | 1<<31},
		// After the 2036 wrap, timestamps count from the next era.
		{"era 1", time.Date(2040, 1, 1, 0, 0, 0, 0, time.UTC), Timestamp(time.Date(2040, 1, 1, 0, 0, 0, 0, time.UTC).Unix()+ntpEpochOffset-1<<32) << 32},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := TimestampFromTime(tc.t); got != tc.ts {
				t.Errorf("TimestampFromTime(%v) = %#x, want %#x", tc.t, got, tc.ts)
			}
			if got := tc.ts.Time(); !got.Equal(tc.t) {
				t.Errorf("%#x.Time() = %v, want %v", tc.ts, got, tc.t)
			}
		})
	}
	// Round trips lose less than a nanosecond.
	now := time.Now()
	if d := TimestampFromTime(now).Time().Sub(now); d < -time.Nanosecond || d > time.Nanosecond {
		t.Errorf("round trip of %v is off by %v", now, d)
	}
}

func TestShort(t *testing.T) {
	if got := Short(1<<16 | 1<<15).Duration(); got != 1500*time.Millisecond {
		t.Errorf("1.5 s in short format is %v", got)
	}
}

func TestParsePacketRejects(t *testing.T) {
	good := (&Packet{Version: 4, Mode: ModeServer}).Marshal()
	if _, err := ParsePacket(good[:PacketLen-1]); err == nil {
		t.Error("short packet accepted")
	}
	bad := bytes.Clone(good)
	bad[0] = 0<<3 | byte(ModeServer)
	if _, err := ParsePacket(bad); err == nil {
		t.Error("version 0 accepted")
	}
	bad[0] = 5<<3 | byte(ModeServer)
	if _, err := ParsePacket(bad); err == nil {
		t.Error("version 5 accepted")
	}
	// Extension fields and MACs are ignored.
	if _, err := ParsePacket(append(bytes.Clone(good), make([]byte, 20)...)); err != nil {
		t.Errorf("packet with trailing data rejected: %v", err)
	}
}

// FuzzParsePacket feeds arbitrary datagrams, as any host can send, to the
// parser. Whatever it accepts must encode back to the header it came from.
func FuzzParsePacket(f *testing.F) {
	f.Add((&Packet{Version: 4, Mode: ModeServer, Stratum: 2, TransmitTime: TimestampFromTime(time.Now())}).Marshal())
	f.Add((&Packet{Version: 3, Mode: ModeServer, ReferenceID: [4]byte{'R', 'A', 'T', 'E'}}).Marshal())
	f.Add([]byte{0x23})
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ParsePacket(b)
		if err != nil {
			return
		}
		if got := p.Marshal(); !bytes.Equal(got, b[:PacketLen]) {
			t.Fatalf("re-encoded header %x differs from %x", got, b[:PacketLen])
		}
		// Converting the timestamps must not panic either.
		_ = p.TransmitTime.Time()
		_ = p.RootDispersion.Duration()
	})
}
