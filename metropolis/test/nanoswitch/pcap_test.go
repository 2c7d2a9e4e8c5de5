package nanoswitch

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"gvisor.dev/gvisor/pkg/tcpip/header"
)

// TestPcap captures a DHCP exchange and reads it back as a pcap reader
// would.
func TestPcap(t *testing.T) {
	pcapPath := filepath.Join(t.TempDir(), "switch.pcap")
	s, stop := newSwitch(t, Config{PcapPath: pcapPath}, true)
	path, err := s.AddPort("node0")
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now().Truncate(time.Second)
	startVM(t, path, macA).acquire()
	stop()

	data, err := os.ReadFile(pcapPath)
	if err != nil {
		t.Fatal(err)
	}
	if len(data) < pcapHeaderSize {
		t.Fatalf("pcap file has %d bytes, less than a header", len(data))
	}
	le := binary.LittleEndian
	if magic, major, minor, snapLen, linkType := le.Uint32(data[0:]), le.Uint16(data[4:]), le.Uint16(data[6:]), le.Uint32(data[16:]), le.Uint32(data[20:]); magic != 0xa1b2c3d4 || major != 2 || minor != 4 || snapLen < 1514 || linkType != 1 {
		t.Fatalf("pcap header: magic %#x, version %d.%d, snap length %d, link type %d", magic, major, minor, snapLen, linkType)
	}

	var dhcpTypes []dhcpv4.MessageType
	rest := data[pcapHeaderSize:]
	for len(rest) > 0 {
		if len(rest) < pcapRecordHeaderSize {
			t.Fatalf("%d bytes left, less than a record header", len(rest))
		}
		sec, usec, capLen, origLen := le.Uint32(rest[0:]), le.Uint32(rest[4:]), le.Uint32(rest[8:]), le.Uint32(rest[12:])
		if capLen != origLen || int(capLen) > len(rest)-pcapRecordHeaderSize {
			t.Fatalf("record of %d bytes captured, %d original, %d left in file", capLen, origLen, len(rest)-pcapRecordHeaderSize)
		}
		if ts := time.Unix(int64(sec), int64(usec)*1000); usec >= 1e6 || ts.Before(start) || ts.After(time.Now()) {
			t.Errorf("record timestamp %v (%d µs) is not during the test", ts, usec)
		}
		frame := rest[pcapRecordHeaderSize : pcapRecordHeaderSize+capLen]
		if len(frame) < header.EthernetMinimumSize {
			t.Fatalf("captured frame of %d bytes", len(frame))
		}
		if r, ok := parseDHCPToClient(frame); ok {
			dhcpTypes = append(dhcpTypes, r.msg.MessageType())
		} else if req, ok := parseDHCPToServer(frame); ok {
			dhcpTypes = append(dhcpTypes, req.MessageType())
		}
		rest = rest[pcapRecordHeaderSize+capLen:]
	}
	want := []dhcpv4.MessageType{dhcpv4.MessageTypeDiscover, dhcpv4.MessageTypeOffer, dhcpv4.MessageTypeRequest, dhcpv4.MessageTypeAck}
	if len(dhcpTypes) != len(want) {
		t.Fatalf("captured DHCP messages %v, want %v", dhcpTypes, want)
	}
	for i := range want {
		if dhcpTypes[i] != want[i] {
			t.Fatalf("captured DHCP messages %v, want %v", dhcpTypes, want)
		}
	}
}

func parseDHCPToServer(frame []byte) (*dhcpv4.DHCPv4, bool) {
	payload, _, ok := testDHCPServer().serverDatagram(frame)
	if !ok {
		return nil, false
	}
	msg, err := dhcpv4.FromBytes(payload)
	return msg, err == nil
}

type failingWriter struct {
	writes int
}

func (w *failingWriter) Write(b []byte) (int, error) {
	w.writes++
	return 0, errors.New("disk full")
}

// TestPcapWriteError checks that capture stops at the first error.
func TestPcapWriteError(t *testing.T) {
	var buf bytes.Buffer
	if _, err := newPCAPWriter(&buf); err != nil || buf.Len() != pcapHeaderSize {
		t.Fatalf("writing the header: %d bytes, %v", buf.Len(), err)
	}
	w := &failingWriter{}
	if _, err := newPCAPWriter(w); err == nil {
		t.Fatal("writing the header to a failing writer succeeded")
	}
	p := &pcapWriter{w: w}
	if err := p.write(time.Now(), []byte("frame")); err == nil {
		t.Fatal("first failing write succeeded")
	}
	if err := p.write(time.Now(), []byte("frame")); err != nil {
		t.Errorf("second write after a failure: %v, want nothing", err)
	}
	if w.writes != 2 {
		t.Errorf("writer got %d writes, want 2 (header and the first record)", w.writes)
	}
}
