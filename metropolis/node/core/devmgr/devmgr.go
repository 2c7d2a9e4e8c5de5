// Package devmgr is the node's device manager: it loads the kernel modules
// that drive the node's hardware, as udev and modprobe would on other
// systems.
//
// The kernel announces every device on the kobject uevent netlink socket,
// and names the drivers that could handle it in the device's MODALIAS. The
// device manager listens on that socket and loads the modules matching each
// new device's modalias (osbase/kmod). Devices that appeared before it
// started, during boot, are announced again by writing "add" to every
// uevent file below /sys/devices (a coldplug replay), so that one code path
// handles both.
//
// Once the replay has been processed the device manager says so in its
// State: by then every device present at boot has had its driver loaded,
// so consumers of firmware-provided files (such as qemu's fw_cfg) or of
// boot-time hardware can look for them without guessing how long to wait.
// The kernel delivers uevents in the order the writes trigger them, so the
// replay ends with a marked event (an "add" with a synthetic UUID on a
// device that always exists), and its arrival means everything before it
// was handled.
//
// The kernel also asks for modules by name rather than by device: a
// filesystem type at mount time, a device-mapper target or cipher, a
// netfilter expression. Without a modprobe for it to call, those requests
// fail, so the device manager loads the modules its caller names in
// Preload before the replay.
//
// State also lists the block devices and network interfaces present, as
// they come and go.
//
// If the socket overflows, events are lost; the runnable then fails, and
// its restart replays every device again.
package devmgr

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"

	"metropolis.dev/osbase/event"
	"metropolis.dev/osbase/event/memory"
	"metropolis.dev/osbase/kmod"
	"metropolis.dev/osbase/logtree"
	"metropolis.dev/osbase/supervisor"
)

// Modules loads kernel modules. *kmod.Manager is one.
type Modules interface {
	// Load loads the module called name, or those with name as an alias.
	Load(name string) error
	// LoadForModalias loads every module whose alias matches modalias and
	// returns the names of those now loaded.
	LoadForModalias(modalias string) ([]string, error)
}

// State is what the device manager knows about the node's devices. Values
// are never changed once published.
type State struct {
	// Coldplugged is set once every device present when the device
	// manager started has been handled (its driver loaded, if any).
	Coldplugged bool
	// BlockDevices are the kernel names (vda, vda1, nvme0n1) of the block
	// devices present, in the order they appeared.
	BlockDevices []string
	// NetInterfaces are the names of the network interfaces present, in
	// the order they appeared.
	NetInterfaces []string
}

// Service is the device manager. Its zero value is not usable; fill in the
// exported fields or use New.
type Service struct {
	// Modules loads drivers. If nil, Run uses a kmod.Manager for the
	// running kernel's module directory.
	Modules Modules
	// Preload are modules to load by name at start, before the replay.
	// One that fails to load (such as a driver for a CPU feature the
	// machine lacks) is logged, not fatal.
	Preload []string
	// Sysfs is where sysfs is mounted, "/sys" if empty.
	Sysfs string

	state memory.Value[*State]
}

// State is the device manager's view of the node's devices. It has no
// value until the device manager has started.
func (s *Service) State() event.Watchable[*State] {
	return &s.state
}

// sentinelDevice is the device whose uevent ends the coldplug replay: the
// null memory device, which every kernel has.
const sentinelDevice = "/devices/virtual/mem/null"

// Run is the device manager's runnable.
func (s *Service) Run(ctx context.Context) error {
	log := supervisor.Logger(ctx)
	sysfs := s.Sysfs
	if sysfs == "" {
		sysfs = "/sys"
	}
	modules := s.Modules
	if modules == nil {
		m, err := kmod.NewManager()
		if err != nil {
			return err
		}
		modules = m
	}
	// Listen first, so that no device appearing during the replay is
	// missed.
	sock, err := listen()
	if err != nil {
		return err
	}
	defer sock.close()
	stop := context.AfterFunc(ctx, sock.interrupt)
	defer stop()

	for _, name := range s.Preload {
		if err := modules.Load(name); err != nil {
			log.Warningf("preloading module %s: %v", name, err)
		}
	}

	marker := newMarker()
	h := &handler{modules: modules, log: log, marker: marker, publish: s.state.Set}
	triggered, failed, err := replay(sysfs, marker)
	if err != nil {
		return err
	}
	log.Infof("replaying %d devices (%d could not be replayed)", triggered, failed)
	if !h.hasSentinel(sysfs) {
		h.coldplugDone()
	}
	h.publishState()
	supervisor.Signal(ctx, supervisor.SignalHealthy)

	buf := make([]byte, 2*maxEventSize)
	for {
		n, err := sock.receive(buf)
		switch {
		case errors.Is(err, os.ErrDeadlineExceeded) && ctx.Err() != nil:
			return ctx.Err()
		case err != nil:
			return err
		}
		ev, err := ParseEvent(buf[:n])
		if err != nil {
			log.Warningf("ignoring malformed uevent: %v", err)
			continue
		}
		h.handle(ev)
	}
}

// replay writes "add" to the uevent file of every device below sysfs, and
// then "add marker" to that of sentinelDevice. It returns how many
// devices it asked the kernel to announce again, and for how many that
// failed (devices that went away in the meantime, or refuse).
func replay(sysfs, marker string) (triggered, failed int, err error) {
	root := filepath.Join(sysfs, "devices")
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			// A device removed while walking; its removal is announced.
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if d.Name() != "uevent" || !d.Type().IsRegular() {
			return nil
		}
		if err := os.WriteFile(p, []byte("add"), 0); err != nil {
			failed++
			return nil
		}
		triggered++
		return nil
	})
	if err != nil {
		return triggered, failed, err
	}
	sentinel := filepath.Join(sysfs, sentinelDevice, "uevent")
	if err := os.WriteFile(sentinel, []byte("add "+marker), 0); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return triggered, failed, err
	}
	return triggered, failed, nil
}

// newMarker returns a random UUID, in the form the kernel requires for a
// synthetic uevent, which it passes on in the event's SYNTH_UUID.
func newMarker() string {
	var b [16]byte
	rand.Read(b[:])
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// handler keeps the device manager's state while it processes events.
type handler struct {
	modules Modules
	log     logtree.LeveledLogger
	// marker is the SYNTH_UUID of the event ending the replay.
	marker  string
	publish func(*State)

	coldplugged bool
	block, net  []string
}

// hasSentinel tells whether the replay's end can be recognised.
func (h *handler) hasSentinel(sysfs string) bool {
	_, err := os.Stat(filepath.Join(sysfs, sentinelDevice, "uevent"))
	return err == nil
}

func (h *handler) coldplugDone() {
	h.coldplugged = true
	h.log.Infof("every device present at start has been handled (block devices: %d, network interfaces: %d)", len(h.block), len(h.net))
}

// handle processes one event: it loads the drivers for a new device and
// updates the state.
func (h *handler) handle(ev *Event) {
	if ev.Action == "add" {
		if alias := ev.Get("MODALIAS"); alias != "" {
			loaded, err := h.modules.LoadForModalias(alias)
			if err != nil {
				h.log.Warningf("loading drivers for %s (%s): %v", ev.DevPath, alias, err)
			}
			if len(loaded) > 0 {
				h.log.Infof("loaded %v for %s", loaded, ev.DevPath)
			}
		}
	}
	changed := false
	switch ev.Get("SUBSYSTEM") {
	case "block":
		changed = h.track(&h.block, ev, path.Base(ev.Get("DEVNAME")))
	case "net":
		changed = h.track(&h.net, ev, ev.Get("INTERFACE"))
	}
	if ev.Action == "add" && ev.DevPath == sentinelDevice && ev.Get("SYNTH_UUID") == h.marker {
		h.coldplugDone()
		changed = true
	}
	if changed {
		h.publishState()
	}
}

// track adds name to list when a device is added, removes it when it is
// removed, and renames it when it moves. It returns whether list changed.
func (h *handler) track(list *[]string, ev *Event, name string) bool {
	if name == "" || name == "." {
		return false
	}
	switch ev.Action {
	case "add":
		if slices.Contains(*list, name) {
			return false
		}
		*list = append(*list, name)
		return true
	case "remove":
		i := slices.Index(*list, name)
		if i < 0 {
			return false
		}
		*list = slices.Delete(*list, i, i+1)
		return true
	case "move":
		old := path.Base(ev.Get("DEVPATH_OLD"))
		i := slices.Index(*list, old)
		if i < 0 {
			*list = append(*list, name)
		} else {
			(*list)[i] = name
		}
		return true
	}
	return false
}

func (h *handler) publishState() {
	h.publish(&State{
		Coldplugged:   h.coldplugged,
		BlockDevices:  slices.Clone(h.block),
		NetInterfaces: slices.Clone(h.net),
	})
}
