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
	frames, err := ReadCapture(data)
	if err != nil {
		t.Fatal(err)
	}
	le := binary.LittleEndian
	if major, minor, snapLen := le.Uint16(data[4:]), le.Uint16(data[6:]), le.Uint32(data[16:]); major != 2 || minor != 4 || snapLen < 1514 {
		t.Fatalf("pcap header: version %d.%d, snap length %d", major, minor, snapLen)
	}
	var dhcpTypes []dhcpv4.MessageType
	for _, f := range frames {
		if f.Time.Before(start) || f.Time.After(time.Now()) {
			t.Errorf("record timestamp %v is not during the test", f.Time)
		}
		if len(f.Frame) < header.EthernetMinimumSize {
			t.Fatalf("captured frame of %d bytes", len(f.Frame))
		}
		if r, ok := parseDHCPToClient(f.Frame); ok {
			dhcpTypes = append(dhcpTypes, r.msg.MessageType())
		} else if req, ok := parseDHCPToServer(f.Frame); ok {
			dhcpTypes = append(dhcpTypes, req.MessageType())
		}
	}
	// A record the switch is still writing is left out.
	if cut, err := ReadCapture(data[:len(data)-1]); err != nil || len(cut) != len(frames)-1 {
		t.Errorf("capture cut in its last record: %d frames, error %v; want %d frames", len(cut), err, len(frames)-1)
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

// FuzzReadCapture feeds ReadCapture arbitrary bytes: it must not panic, and
// every frame it returns must lie within the input.
func FuzzReadCapture(f *testing.F) {
	var buf bytes.Buffer
	w, err := newPCAPWriter(&buf)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(append([]byte(nil), buf.Bytes()...))
	if err := w.write(time.Unix(1, 2000), make([]byte, 60)); err != nil {
		f.Fatal(err)
	}
	f.Add(append([]byte(nil), buf.Bytes()...))
	f.Add(buf.Bytes()[:buf.Len()-5])
	f.Add([]byte("not a capture at all, but long enough"))
	f.Fuzz(func(t *testing.T, data []byte) {
		frames, err := ReadCapture(data)
		if err != nil {
			return
		}
		total := pcapHeaderSize
		for _, fr := range frames {
			total += pcapRecordHeaderSize + len(fr.Frame)
		}
		if total > len(data) {
			t.Fatalf("frames span %d bytes of %d", total, len(data))
		}
	})
}
