package curator

import (
	"testing"
	"time"

	apb "metropolis.dev/metropolis/proto/api"
	cpb "metropolis.dev/metropolis/proto/common"
)

func TestNodeHealth(t *testing.T) {
	now := time.Now()
	up := cpb.NodeState_NODE_STATE_UP
	for _, tc := range []struct {
		name        string
		state       cpb.NodeState
		last        time.Time
		leaderSince time.Time
		want        apb.Node_Health
		wantSince   time.Duration
	}{
		{"young leader, no heartbeat", up, time.Time{}, now.Add(-time.Second), apb.Node_HEALTH_UNKNOWN, time.Second},
		{"old leader, no heartbeat", up, time.Time{}, now.Add(-HeartbeatTimeout - time.Second), apb.Node_HEALTH_HEARTBEAT_TIMEOUT, HeartbeatTimeout + time.Second},
		{"fresh heartbeat", up, now.Add(-5 * time.Second), now.Add(-time.Hour), apb.Node_HEALTH_HEALTHY, 5 * time.Second},
		{"fresh heartbeat, young leader", up, now.Add(-time.Second), now.Add(-2 * time.Second), apb.Node_HEALTH_HEALTHY, time.Second},
		{"stale heartbeat", up, now.Add(-HeartbeatTimeout - time.Second), now.Add(-time.Hour), apb.Node_HEALTH_HEARTBEAT_TIMEOUT, HeartbeatTimeout + time.Second},
		{"NEW node", cpb.NodeState_NODE_STATE_NEW, time.Time{}, now.Add(-time.Hour), apb.Node_HEALTH_UNKNOWN, time.Hour},
		{"decommissioned node with heartbeat", cpb.NodeState_NODE_STATE_DECOMMISSIONED, now.Add(-time.Second), now.Add(-time.Hour), apb.Node_HEALTH_UNKNOWN, time.Second},
	} {
		health, since := nodeHealth(tc.state, tc.last, tc.leaderSince, now)
		if health != tc.want || since != tc.wantSince {
			t.Errorf("%s: got %s, %v, want %s, %v", tc.name, health, since, tc.want, tc.wantSince)
		}
	}
}

func TestHeartbeats(t *testing.T) {
	var h heartbeats
	if _, ok := h.get("a"); ok {
		t.Fatalf("heartbeat of unknown node")
	}
	now := time.Now()
	h.record("a", now)
	if got, ok := h.get("a"); !ok || !got.Equal(now) {
		t.Errorf("get = %v, %v", got, ok)
	}
	h.forget("a")
	if _, ok := h.get("a"); ok {
		t.Errorf("forgotten heartbeat still there")
	}
}
