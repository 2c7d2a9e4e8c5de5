package qemu

import (
	"fmt"
	"math"
	"os"
	"strconv"
	"sync"
	"time"
)

// TimeoutScaleEnv names the environment variable that scales every timeout
// of VM tests (see Timeout).
const TimeoutScaleEnv = "METROPOLIS_TEST_TIMEOUT_SCALE"

// timeoutScale reads TimeoutScaleEnv once per process.
var timeoutScale = sync.OnceValues(func() (float64, error) {
	return parseTimeoutScale(os.Getenv(TimeoutScaleEnv))
})

// parseTimeoutScale parses the value of TimeoutScaleEnv; empty means 1.
func parseTimeoutScale(s string) (float64, error) {
	if s == "" {
		return 1, nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || !(f > 0) || math.IsInf(f, 0) {
		return 0, fmt.Errorf("%s=%q: want a positive decimal number such as 1 or 2.5", TimeoutScaleEnv, s)
	}
	return f, nil
}

// TimeoutScale returns the factor Timeout multiplies durations with: the
// value of the environment variable METROPOLIS_TEST_TIMEOUT_SCALE, or 1 if it
// is unset. It panics if the variable is set to anything but a positive
// number, as a test cannot run with timeouts it cannot compute.
func TimeoutScale() float64 {
	f, err := timeoutScale()
	if err != nil {
		panic(err)
	}
	return f
}

// Timeout scales a base timeout by TimeoutScale. Base timeouts are chosen
// for TCG software emulation on a 2-core machine, the slowest environment
// the tests normally run in. Every duration a VM test waits for should go
// through Timeout, except those given to Console.Expect and
// Console.ExpectRegexp, which scale their durations themselves.
func Timeout(d time.Duration) time.Duration {
	return scaleDuration(d, TimeoutScale())
}

func scaleDuration(d time.Duration, scale float64) time.Duration {
	f := float64(d) * scale
	if f >= math.MaxInt64 {
		return math.MaxInt64
	}
	return time.Duration(f)
}
