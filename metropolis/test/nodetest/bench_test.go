package nodetest

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"testing"
	"time"

	"metropolis.dev/osbase/test/qemu"
)

var reStorageUp = regexp.MustCompile(`Milestone: storage mounted`)

// BenchmarkBoot boots fresh machines, one after another, and reports the
// median time from qemu's start until the node has an address and until
// it has mounted its new data partition.
func BenchmarkBoot(b *testing.B) {
	startNetwork(b)
	var networkUp, storageUp []time.Duration
	for i := range b.N {
		m := newMachine(b)
		start := time.Now()
		v := m.boot(b, fmt.Sprintf("bench-%d", i), m.tpmDir)
		var network, storage time.Duration
		var memory string
		ctx, cancel := context.WithTimeout(b.Context(), qemu.Timeout(bootTimeout))
		_, err := v.Console().ExpectFunc(ctx, "the milestones", func(line string) bool {
			switch {
			case bootFailure.MatchString(line):
				return true
			case network == 0 && reNetworkUp.MatchString(line):
				network = time.Since(start)
			case storage == 0 && reStorageUp.MatchString(line):
				storage = time.Since(start)
			case reMemory.MatchString(line):
				memory = reMemory.FindString(line)
			}
			return network != 0 && storage != 0 && memory != ""
		})
		cancel()
		if err != nil || memory == "" {
			b.Fatalf("boot %d: %v\n%s", i+1, err, v.Console().Transcript())
		}
		b.Logf("boot %d: network up after %.1f s, storage mounted after %.1f s; %s", i+1, network.Seconds(), storage.Seconds(), memory)
		networkUp = append(networkUp, network)
		storageUp = append(storageUp, storage)
		v.Stop()
	}
	b.ReportMetric(median(networkUp).Seconds(), "s-to-network")
	b.ReportMetric(median(storageUp).Seconds(), "s-to-storage")
	b.ReportMetric(0, "ns/op")
}

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}
