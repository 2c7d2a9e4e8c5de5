// Package sntp is a Simple Network Time Protocol client (RFC 4330, and the
// client side of RFC 5905): it asks an NTP server for the time and tells how
// far the local clock is off, without keeping state between queries. What to
// do with the answers (which server to believe, whether to step or slew the
// clock) is its caller's business.
//
// Replies are checked before they are believed: a reply must echo the
// random cookie the query carried as its transmit timestamp, which defeats
// replies forged by anyone who did not see the query; and a server that is
// unsynchronised (leap indicator 3, stratum 16 or more), sends a
// kiss-of-death (stratum 0), or reports impossible times is refused.
package sntp

import (
	"encoding/binary"
	"fmt"
	"time"
)

// PacketLen is the length of an NTP packet without extension fields.
const PacketLen = 48

// LeapIndicator warns of a leap second at the end of the day, or says that
// the server's clock is not synchronised.
type LeapIndicator uint8

const (
	LeapNone           LeapIndicator = 0
	LeapAddSecond      LeapIndicator = 1
	LeapDeleteSecond   LeapIndicator = 2
	LeapUnsynchronized LeapIndicator = 3
)

// Mode is the association mode of a packet's sender.
type Mode uint8

const (
	ModeClient Mode = 3
	ModeServer Mode = 4
)

// Version is the NTP version this client speaks.
const Version = 4

// Timestamp is an NTP timestamp: seconds since 1900 in the upper 32 bits,
// and the fraction of a second in the lower.
type Timestamp uint64

// ntpEpochOffset is the number of seconds from the NTP epoch (1900) to the
// Unix epoch (1970).
const ntpEpochOffset = 2208988800

// TimestampFromTime converts t, which must be between 1968 and 2104, to a
// timestamp.
func TimestampFromTime(t time.Time) Timestamp {
	secs := t.Unix() + ntpEpochOffset
	frac := (uint64(t.Nanosecond()) << 32) / uint64(time.Second)
	return Timestamp(uint64(secs)<<32 | frac)
}

// Time converts ts to a time. Timestamps wrap every 2^32 seconds (136
// years); following RFC 4330, those with the most significant bit of their
// seconds set are taken as 1968-2036, the others as 2036-2104.
func (ts Timestamp) Time() time.Time {
	secs := int64(ts >> 32)
	if secs&0x80000000 == 0 {
		secs += 1 << 32
	}
	nanos := (int64(ts&0xffffffff)*int64(time.Second) + 1<<31) >> 32
	return time.Unix(secs-ntpEpochOffset, nanos)
}

// Short is an NTP short format duration: seconds in the upper 16 bits, the
// fraction of a second in the lower.
type Short uint32

// Duration converts s to a duration.
func (s Short) Duration() time.Duration {
	return time.Duration((int64(s)*int64(time.Second) + 1<<15) >> 16)
}

// Packet is an NTP packet's header, which is all SNTP uses.
type Packet struct {
	Leap      LeapIndicator
	Version   uint8
	Mode      Mode
	Stratum   uint8
	Poll      int8
	Precision int8
	// RootDelay and RootDispersion are the server's round trip time to and
	// error bound relative to the reference clock at the root of its
	// synchronisation tree.
	RootDelay      Short
	RootDispersion Short
	// ReferenceID names the server's time source, or for kiss-of-death
	// packets (stratum 0), holds the kiss code in ASCII.
	ReferenceID [4]byte
	// ReferenceTime is when the server's clock was last set.
	ReferenceTime Timestamp
	// OriginTime is the transmit timestamp of the request a reply answers.
	OriginTime Timestamp
	// ReceiveTime and TransmitTime are when the sender received the
	// request and sent the packet.
	ReceiveTime  Timestamp
	TransmitTime Timestamp
}

// Marshal encodes p.
func (p *Packet) Marshal() []byte {
	b := make([]byte, PacketLen)
	b[0] = byte(p.Leap)<<6 | (p.Version&0x7)<<3 | byte(p.Mode)&0x7
	b[1] = p.Stratum
	b[2] = byte(p.Poll)
	b[3] = byte(p.Precision)
	binary.BigEndian.PutUint32(b[4:], uint32(p.RootDelay))
	binary.BigEndian.PutUint32(b[8:], uint32(p.RootDispersion))
	copy(b[12:16], p.ReferenceID[:])
	binary.BigEndian.PutUint64(b[16:], uint64(p.ReferenceTime))
	binary.BigEndian.PutUint64(b[24:], uint64(p.OriginTime))
	binary.BigEndian.PutUint64(b[32:], uint64(p.ReceiveTime))
	binary.BigEndian.PutUint64(b[40:], uint64(p.TransmitTime))
	return b
}

// ParsePacket decodes the header of an NTP packet. Extension fields and
// message authentication codes after it are ignored. It checks only the
// packet's form; whether a reply can be believed is checked by the client.
func ParsePacket(b []byte) (*Packet, error) {
	if len(b) < PacketLen {
		return nil, fmt.Errorf("NTP packet of %d bytes is shorter than the %d-byte header", len(b), PacketLen)
	}
	p := &Packet{
		Leap:           LeapIndicator(b[0] >> 6),
		Version:        (b[0] >> 3) & 0x7,
		Mode:           Mode(b[0] & 0x7),
		Stratum:        b[1],
		Poll:           int8(b[2]),
		Precision:      int8(b[3]),
		RootDelay:      Short(binary.BigEndian.Uint32(b[4:])),
		RootDispersion: Short(binary.BigEndian.Uint32(b[8:])),
		ReferenceTime:  Timestamp(binary.BigEndian.Uint64(b[16:])),
		OriginTime:     Timestamp(binary.BigEndian.Uint64(b[24:])),
		ReceiveTime:    Timestamp(binary.BigEndian.Uint64(b[32:])),
		TransmitTime:   Timestamp(binary.BigEndian.Uint64(b[40:])),
	}
	copy(p.ReferenceID[:], b[12:16])
	if p.Version < 1 || p.Version > 4 {
		return nil, fmt.Errorf("NTP version %d is unknown", p.Version)
	}
	return p, nil
}
