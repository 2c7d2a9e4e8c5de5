package main

import (
	"net"
	"net/netip"
	"regexp"
	"strings"
	"testing"

	"metropolis.dev/metropolis/node/core/network"
	timesvc "metropolis.dev/metropolis/node/core/time"
	cpb "metropolis.dev/metropolis/proto/common"
)

func TestSummary(t *testing.T) {
	for _, tc := range []struct {
		state nodeState
		want  string
	}{
		{nodeState{}, "Node status: no address yet, storage not mounted yet, time not synced yet"},
		{nodeState{
			network: &network.Status{ExternalAddress: net.ParseIP("10.99.0.10")},
			storage: &storageStatus{Mounted: true, Security: cpb.NodeStorageSecurity_NODE_STORAGE_SECURITY_ENCRYPTED},
			clock:   &timesvc.ClockStatus{Synchronized: true, Server: netip.MustParseAddrPort("10.99.0.1:123")},
		}, "Node status: address 10.99.0.10, storage mounted (encrypted), time synced with 10.99.0.1:123"},
		{nodeState{
			network: &network.Status{},
			storage: &storageStatus{Problem: "no TPM"},
			clock:   &timesvc.ClockStatus{},
		}, "Node status: no address yet, storage not mounted: no TPM, time not synced"},
	} {
		if got := tc.state.summary(); got != tc.want {
			t.Errorf("got %q, want %q", got, tc.want)
		}
	}
}

func TestResidentMemory(t *testing.T) {
	if got := residentMemory("/proc/self/status"); !regexp.MustCompile(`^VmRSS \d+ kB \(RssAnon \d+ kB\)$`).MatchString(got) {
		t.Errorf("memory of the test: %q", got)
	}
	if got := residentMemory("/nonexistent"); !strings.HasPrefix(got, "unknown") {
		t.Errorf("memory of nothing: %q", got)
	}
}
