package time

import (
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"metropolis.dev/osbase/test/ktest"
)

// TestKernel runs the tests of SystemClock in a VM, whose clocks they may
// change.
func TestKernel(t *testing.T) {
	ktest.Run(t, ktest.Options{Run: "^TestVM"})
}

// readRTC returns the time of the hardware clock at path.
func readRTC(t *testing.T, path string) time.Time {
	t.Helper()
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	rtc, err := unix.IoctlGetRTCTime(fd)
	if err != nil {
		t.Fatalf("reading %s: %v", path, err)
	}
	return time.Date(int(rtc.Year)+1900, time.Month(rtc.Mon+1), int(rtc.Mday), int(rtc.Hour), int(rtc.Min), int(rtc.Sec), 0, time.UTC)
}

func TestVMSystemClockStep(t *testing.T) {
	ktest.OnlyInVM(t)
	c := SystemClock{RTCPath: "/dev/rtc0"}
	for _, offset := range []time.Duration{time.Hour + 300*time.Millisecond, -2*time.Hour - 700*time.Millisecond} {
		// Wall clock time, and separately, how much of it passes by the
		// monotonic clock, which steps do not move.
		before := time.Now()
		if err := c.Step(offset); err != nil {
			t.Fatal(err)
		}
		elapsed := time.Since(before)
		moved := time.Now().Round(0).Sub(before.Round(0)) - elapsed
		if (moved - offset).Abs() > 100*time.Millisecond {
			t.Errorf("Step(%v) moved the clock by %v", offset, moved)
		}
		if d := time.Until(readRTC(t, "/dev/rtc0")); d.Abs() > 2*time.Second {
			t.Errorf("after Step(%v), the hardware clock is %v off the system clock", offset, d)
		}
	}
}

func TestVMSystemClockSlew(t *testing.T) {
	ktest.OnlyInVM(t)
	c := SystemClock{}
	if err := c.Slew(100*time.Millisecond, 20*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	var tx unix.Timex
	state, err := unix.Adjtimex(&tx)
	if err != nil {
		t.Fatal(err)
	}
	if tx.Status&unix.STA_UNSYNC != 0 || state == unix.TIME_ERROR {
		t.Errorf("clock not synchronised after Slew: status %#x, state %d", tx.Status, state)
	}
	if tx.Status&unix.STA_PLL == 0 || tx.Status&unix.STA_NANO == 0 {
		t.Errorf("status %#x, want the PLL in nanosecond mode", tx.Status)
	}
	// The kernel works the offset off gradually: what is left of it is
	// positive, and no more than was asked for.
	if tx.Offset <= 0 || tx.Offset > int64(100*time.Millisecond) {
		t.Errorf("remaining offset %v, want within (0, 100ms]", time.Duration(tx.Offset))
	}
	if tx.Maxerror < 20000 || tx.Maxerror > 30000 {
		t.Errorf("maximum error %d µs, want about 20000", tx.Maxerror)
	}
}
