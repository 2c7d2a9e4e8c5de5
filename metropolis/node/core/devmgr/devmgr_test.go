package devmgr

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"metropolis.dev/osbase/logtree"
	"metropolis.dev/osbase/supervisor"
)

// fakeModules records the modaliases it is asked to load drivers for. The
// kernel modules of the node cannot be loaded into the kernel running the
// tests.
type fakeModules struct {
	mu       sync.Mutex
	asked    []string
	preloads []string
	drivers  map[string][]string
	err      error
}

func (f *fakeModules) Load(name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.preloads = append(f.preloads, name)
	return f.err
}

func (f *fakeModules) LoadForModalias(alias string) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.asked = append(f.asked, alias)
	return f.drivers[alias], f.err
}

func writeFiles(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for p, content := range files {
		p = filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestReplay(t *testing.T) {
	sysfs := t.TempDir()
	writeFiles(t, sysfs, map[string]string{
		"devices/pci0000:00/uevent":                 "",
		"devices/pci0000:00/0000:00:03.0/uevent":    "",
		"devices/pci0000:00/0000:00:03.0/modalias":  "pci:v1AF4",
		"devices/virtual/mem/null/uevent":           "",
		"class/net/eth0/uevent":                     "",
		"devices/pci0000:00/0000:00:03.0/vendor":    "0x1af4",
		"devices/pci0000:00/0000:00:03.0/uevent.sh": "",
	})
	// Links lead out of /sys/devices (to classes, buses, drivers) and
	// back in; following them would replay devices twice or loop.
	if err := os.Symlink("../../../class/net", filepath.Join(sysfs, "devices/pci0000:00/0000:00:03.0/net")); err != nil {
		t.Fatal(err)
	}
	triggered, failed, err := replay(sysfs, "0d5e3f29-1f44-4b5a-8c52-3c0b8e8b1c7e")
	if err != nil {
		t.Fatal(err)
	}
	if triggered != 3 || failed != 0 {
		t.Errorf("triggered %d, failed %d, want 3 and 0", triggered, failed)
	}
	for p, want := range map[string]string{
		"devices/pci0000:00/uevent":                 "add",
		"devices/pci0000:00/0000:00:03.0/uevent":    "add",
		"devices/virtual/mem/null/uevent":           "add 0d5e3f29-1f44-4b5a-8c52-3c0b8e8b1c7e",
		"class/net/eth0/uevent":                     "",
		"devices/pci0000:00/0000:00:03.0/modalias":  "pci:v1AF4",
		"devices/pci0000:00/0000:00:03.0/uevent.sh": "",
	} {
		got, err := os.ReadFile(filepath.Join(sysfs, p))
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != want {
			t.Errorf("%s holds %q, want %q", p, got, want)
		}
	}
}

func TestNewMarker(t *testing.T) {
	m := newMarker()
	if len(m) != 36 || strings.Count(m, "-") != 4 || m == newMarker() {
		t.Errorf("marker %q is not a random UUID", m)
	}
}

// recorder collects the states a handler publishes.
type recorder struct{ states []*State }

func (r *recorder) publish(s *State) { r.states = append(r.states, s) }

func (r *recorder) last(t *testing.T) *State {
	t.Helper()
	if len(r.states) == 0 {
		t.Fatal("no state published")
	}
	return r.states[len(r.states)-1]
}

func newEvent(t *testing.T, action, devpath string, vars ...string) *Event {
	t.Helper()
	e, err := ParseEvent(message(action+"@"+devpath, append([]string{"ACTION=" + action, "DEVPATH=" + devpath}, vars...)...))
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func TestHandle(t *testing.T) {
	const marker = "0d5e3f29-1f44-4b5a-8c52-3c0b8e8b1c7e"
	modules := &fakeModules{drivers: map[string][]string{"virtio:d00000001v00001AF4": {"virtio_net"}}}
	rec := &recorder{}
	h := &handler{modules: modules, log: logtree.New().MustLeveledFor("devmgr"), marker: marker, publish: rec.publish}

	h.handle(newEvent(t, "add", "/devices/pci0000:00/0000:00:03.0/virtio1", "SUBSYSTEM=virtio", "MODALIAS=virtio:d00000001v00001AF4"))
	// Only additions load drivers.
	h.handle(newEvent(t, "change", "/devices/pci0000:00/0000:00:04.0", "SUBSYSTEM=pci", "MODALIAS=pci:v00001AF4d00001001"))
	if want := []string{"virtio:d00000001v00001AF4"}; !slices.Equal(modules.asked, want) {
		t.Errorf("drivers loaded for %v, want %v", modules.asked, want)
	}
	if len(rec.states) != 0 {
		t.Errorf("published %d states for events that change nothing", len(rec.states))
	}

	h.handle(newEvent(t, "add", "/devices/pci0000:00/0000:00:05.0/virtio2/block/vda", "SUBSYSTEM=block", "DEVNAME=vda"))
	h.handle(newEvent(t, "add", "/devices/pci0000:00/0000:00:05.0/virtio2/block/vda/vda1", "SUBSYSTEM=block", "DEVNAME=vda1"))
	h.handle(newEvent(t, "add", "/devices/virtual/net/eth0", "SUBSYSTEM=net", "INTERFACE=eth0"))
	h.handle(newEvent(t, "move", "/devices/virtual/net/enp0s3", "SUBSYSTEM=net", "INTERFACE=enp0s3", "DEVPATH_OLD=/devices/virtual/net/eth0"))
	h.handle(newEvent(t, "remove", "/devices/pci0000:00/0000:00:05.0/virtio2/block/vda/vda1", "SUBSYSTEM=block", "DEVNAME=vda1"))
	// A replay announces devices already seen.
	h.handle(newEvent(t, "add", "/devices/pci0000:00/0000:00:05.0/virtio2/block/vda", "SUBSYSTEM=block", "DEVNAME=vda"))
	s := rec.last(t)
	if !slices.Equal(s.BlockDevices, []string{"vda"}) || !slices.Equal(s.NetInterfaces, []string{"enp0s3"}) || s.Coldplugged {
		t.Errorf("got state %+v, want vda, enp0s3, not coldplugged", s)
	}

	// Only the marked event on the sentinel device ends the replay.
	h.handle(newEvent(t, "add", sentinelDevice, "SUBSYSTEM=mem"))
	h.handle(newEvent(t, "add", sentinelDevice, "SUBSYSTEM=mem", "SYNTH_UUID=11111111-1f44-4b5a-8c52-3c0b8e8b1c7e"))
	if rec.last(t).Coldplugged {
		t.Fatal("coldplugged before the marked event")
	}
	h.handle(newEvent(t, "add", sentinelDevice, "SUBSYSTEM=mem", "SYNTH_UUID="+marker))
	if !rec.last(t).Coldplugged {
		t.Error("not coldplugged after the marked event")
	}
	// Published states are never changed afterwards.
	if !slices.Equal(s.BlockDevices, []string{"vda"}) {
		t.Errorf("an earlier state changed to %+v", s)
	}
}

func TestHandleLogsLoadFailures(t *testing.T) {
	lt := logtree.New()
	modules := &fakeModules{err: errors.New("finit_module: exec format error")}
	h := &handler{modules: modules, log: lt.MustLeveledFor("devmgr"), publish: func(*State) {}}
	h.handle(newEvent(t, "add", "/devices/x", "MODALIAS=pci:v0000"))
	r, err := lt.Read("devmgr", logtree.WithBacklog(logtree.BacklogAllAvailable))
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Backlog) != 1 || !strings.Contains(r.Backlog[0].Text(), "exec format error") {
		t.Errorf("got log %v, want the load error", r.Backlog)
	}
}

// TestReceiveKernelEvents receives real uevents: it creates a veth pair
// in a network namespace of its own, whose uevents the kernel sends only
// to sockets in that namespace.
func TestReceiveKernelEvents(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to create a network namespace")
	}
	errc := make(chan error, 1)
	go func() {
		// The thread stays in the namespace and exits with the
		// goroutine.
		runtime.LockOSThread()
		errc <- receiveVethEvents()
	}()
	select {
	case err := <-errc:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no uevent for the veth pair within 30 s")
	}
}

func receiveVethEvents() error {
	if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
		return fmt.Errorf("unshare: %w", err)
	}
	sock, err := listen()
	if err != nil {
		return err
	}
	defer sock.close()
	nl, err := netlink.NewHandle()
	if err != nil {
		return err
	}
	defer nl.Close()
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "devmgr0"}, PeerName: "devmgr1"}
	if err := nl.LinkAdd(veth); err != nil {
		return fmt.Errorf("creating veth pair: %w", err)
	}
	rec := &recorder{}
	h := &handler{modules: &fakeModules{}, log: logtree.New().MustLeveledFor("devmgr"), publish: rec.publish}
	buf := make([]byte, 2*maxEventSize)
	for {
		n, err := sock.receive(buf)
		if err != nil {
			return err
		}
		ev, err := ParseEvent(buf[:n])
		if err != nil {
			return fmt.Errorf("kernel sent an event ParseEvent rejects: %w", err)
		}
		h.handle(ev)
		if len(rec.states) > 0 {
			s := rec.states[len(rec.states)-1]
			if slices.Contains(s.NetInterfaces, "devmgr0") && slices.Contains(s.NetInterfaces, "devmgr1") {
				return nil
			}
		}
	}
}

// TestRun runs the device manager on a sysfs without the sentinel device,
// where the replay is done once written.
func TestRun(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for SO_RCVBUFFORCE")
	}
	sysfs := t.TempDir()
	writeFiles(t, sysfs, map[string]string{"devices/pci0000:00/uevent": ""})
	modules := &fakeModules{}
	s := &Service{Modules: modules, Sysfs: sysfs, Preload: []string{"vfat", "xfs"}}
	cancel, _ := supervisor.TestHarness(t, s.Run)
	defer cancel()
	w := s.State().Watch()
	defer w.Close()
	ctx, cancelGet := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancelGet()
	st, err := w.Get(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !st.Coldplugged {
		t.Errorf("state %+v, want coldplugged", st)
	}
	modules.mu.Lock()
	if !slices.Equal(modules.preloads, []string{"vfat", "xfs"}) {
		t.Errorf("preloaded %v, want vfat and xfs", modules.preloads)
	}
	modules.mu.Unlock()
	got, err := os.ReadFile(filepath.Join(sysfs, "devices/pci0000:00/uevent"))
	if err != nil || string(got) != "add" {
		t.Errorf("device not replayed: %q, %v", got, err)
	}
}
