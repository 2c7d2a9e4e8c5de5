package nanoswitch

import (
	"encoding/binary"
	"fmt"
	"io"
	"sync"
	"time"

	"metropolis.dev/osbase/test/qemu"
)

// The classic pcap file format (as libpcap writes it): a global header, then
// one record header and the frame bytes per frame, all in the writer's byte
// order, which the magic number tells readers.
const (
	pcapMagicMicroseconds = 0xa1b2c3d4
	pcapVersionMajor      = 2
	pcapVersionMinor      = 4
	pcapLinkTypeEthernet  = 1
	pcapSnapLen           = qemu.MaxFrameSize
	pcapHeaderSize        = 24
	pcapRecordHeaderSize  = 16
)

// pcapWriter writes frames to a pcap file. It is safe for concurrent use.
type pcapWriter struct {
	mu sync.Mutex
	w  io.Writer
	// failed stops writing after the first error, which would otherwise
	// repeat for every frame.
	failed bool
}

func newPCAPWriter(w io.Writer) (*pcapWriter, error) {
	hdr := make([]byte, pcapHeaderSize)
	binary.LittleEndian.PutUint32(hdr[0:], pcapMagicMicroseconds)
	binary.LittleEndian.PutUint16(hdr[4:], pcapVersionMajor)
	binary.LittleEndian.PutUint16(hdr[6:], pcapVersionMinor)
	// Bytes 8 to 15 (time zone offset and timestamp accuracy) stay zero.
	binary.LittleEndian.PutUint32(hdr[16:], pcapSnapLen)
	binary.LittleEndian.PutUint32(hdr[20:], pcapLinkTypeEthernet)
	if _, err := w.Write(hdr); err != nil {
		return nil, fmt.Errorf("writing pcap header: %w", err)
	}
	return &pcapWriter{w: w}, nil
}

// write appends one frame, captured at t, in a single Write call so that the
// file holds whole records at any moment. After it has returned an error, it
// does nothing.
func (p *pcapWriter) write(t time.Time, frame []byte) error {
	rec := make([]byte, pcapRecordHeaderSize+len(frame))
	binary.LittleEndian.PutUint32(rec[0:], uint32(t.Unix()))
	binary.LittleEndian.PutUint32(rec[4:], uint32(t.Nanosecond()/1000))
	binary.LittleEndian.PutUint32(rec[8:], uint32(len(frame)))
	binary.LittleEndian.PutUint32(rec[12:], uint32(len(frame)))
	copy(rec[pcapRecordHeaderSize:], frame)
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.failed {
		return nil
	}
	if _, err := p.w.Write(rec); err != nil {
		p.failed = true
		return fmt.Errorf("writing pcap record: %w", err)
	}
	return nil
}

// CapturedFrame is a frame read back from the switch's capture.
type CapturedFrame struct {
	Time  time.Time
	Frame []byte
}

// ReadCapture parses a capture the switch wrote (Config.PcapPath), in the
// little-endian form it writes. The switch may be writing more while the
// file is read: a record cut short at the end is left out, not an error.
// The frames share data's memory.
func ReadCapture(data []byte) ([]CapturedFrame, error) {
	if len(data) < pcapHeaderSize {
		return nil, fmt.Errorf("capture has %d bytes, less than its %d-byte header", len(data), pcapHeaderSize)
	}
	le := binary.LittleEndian
	if magic := le.Uint32(data[0:]); magic != pcapMagicMicroseconds {
		return nil, fmt.Errorf("capture starts with magic number %#x, want %#x", magic, pcapMagicMicroseconds)
	}
	if linkType := le.Uint32(data[20:]); linkType != pcapLinkTypeEthernet {
		return nil, fmt.Errorf("capture has link type %d, want Ethernet (%d)", linkType, pcapLinkTypeEthernet)
	}
	var frames []CapturedFrame
	rest := data[pcapHeaderSize:]
	for len(rest) >= pcapRecordHeaderSize {
		sec, usec, capLen, origLen := le.Uint32(rest[0:]), le.Uint32(rest[4:]), le.Uint32(rest[8:]), le.Uint32(rest[12:])
		if capLen != origLen || capLen > pcapSnapLen || usec >= 1e6 {
			return nil, fmt.Errorf("record at offset %d: %d bytes captured of %d, at %d µs past the second", len(data)-len(rest), capLen, origLen, usec)
		}
		if uint64(capLen) > uint64(len(rest)-pcapRecordHeaderSize) {
			break
		}
		frames = append(frames, CapturedFrame{
			Time:  time.Unix(int64(sec), int64(usec)*1000),
			Frame: rest[pcapRecordHeaderSize : pcapRecordHeaderSize+capLen],
		})
		rest = rest[pcapRecordHeaderSize+capLen:]
	}
	return frames, nil
}
