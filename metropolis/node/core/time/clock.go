package time

import (
	"fmt"
	"time"

	"golang.org/x/sys/unix"
)

// Clock is the clock the time service corrects. The system's is
// SystemClock; tests use their own, so as not to change the machine's time.
type Clock interface {
	// Step moves the clock by offset at once, and sets the hardware clock,
	// if any, to the corrected time.
	Step(offset time.Duration) error
	// Slew makes the clock catch up with offset gradually, and marks it
	// synchronised with an error of at most maxError.
	Slew(offset, maxError time.Duration) error
}

// maxSlew is the largest offset the kernel's phase-locked loop takes in one
// adjustment (MAXPHASE); larger offsets are clamped to it.
const maxSlew = 500 * time.Millisecond

// SystemClock is the kernel's realtime clock, and optionally the hardware
// real-time clock.
//
// Steps go through adjtimex(ADJ_SETOFFSET), which adds the offset to the
// clock atomically, so no time passes between reading the clock and
// setting it. Slews hand the offset to the kernel's phase-locked loop
// (adjtimex ADJ_OFFSET with STA_PLL), which corrects it over the next
// minutes and adjusts the clock's frequency for its drift. Marking the
// clock synchronised also makes the kernel copy it to the hardware clock
// every eleven minutes, so slews need not set the hardware clock.
type SystemClock struct {
	// RTCPath is the device of the hardware clock set after steps,
	// usually /dev/rtc0. Empty means none.
	RTCPath string
}

func (c SystemClock) Step(offset time.Duration) error {
	// With ADJ_NANO, the microseconds field holds nanoseconds, which must
	// not be negative: negative offsets have negative seconds.
	secs, nanos := int64(offset/time.Second), int64(offset%time.Second)
	if nanos < 0 {
		secs--
		nanos += int64(time.Second)
	}
	tx := unix.Timex{
		Modes: unix.ADJ_SETOFFSET | unix.ADJ_NANO,
		Time:  unix.Timeval{Sec: secs, Usec: nanos},
	}
	if _, err := unix.Adjtimex(&tx); err != nil {
		return fmt.Errorf("stepping the clock by %v: %w", offset, err)
	}
	if c.RTCPath == "" {
		return nil
	}
	return setRTC(c.RTCPath)
}

func (c SystemClock) Slew(offset, maxError time.Duration) error {
	offset = min(max(offset, -maxSlew), maxSlew)
	tx := unix.Timex{
		Modes:  unix.ADJ_OFFSET | unix.ADJ_NANO | unix.ADJ_STATUS | unix.ADJ_MAXERROR | unix.ADJ_ESTERROR,
		Offset: int64(offset),
		// Setting the status to the PLL mode alone clears STA_UNSYNC.
		Status:   unix.STA_PLL,
		Maxerror: maxError.Microseconds(),
		Esterror: maxError.Microseconds(),
	}
	if _, err := unix.Adjtimex(&tx); err != nil {
		return fmt.Errorf("slewing the clock by %v: %w", offset, err)
	}
	return nil
}

// setRTC sets the hardware clock at path to the system time, in UTC. The
// hardware clock counts whole seconds, so it is set at the start of the next
// second, when the system time is a whole second too.
func setRTC(path string) error {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("opening hardware clock: %w", err)
	}
	defer unix.Close(fd)
	next := time.Now().Truncate(time.Second).Add(time.Second)
	time.Sleep(time.Until(next))
	t := next.UTC()
	rtc := unix.RTCTime{
		Sec:  int32(t.Second()),
		Min:  int32(t.Minute()),
		Hour: int32(t.Hour()),
		Mday: int32(t.Day()),
		Mon:  int32(t.Month()) - 1,
		Year: int32(t.Year()) - 1900,
		Wday: int32(t.Weekday()),
		Yday: int32(t.YearDay()) - 1,
	}
	if err := unix.IoctlSetRTCTime(fd, &rtc); err != nil {
		return fmt.Errorf("setting hardware clock %s to %v: %w", path, t, err)
	}
	return nil
}
