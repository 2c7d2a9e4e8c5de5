package curator

import (
	"sync"
	"time"

	apb "metropolis.dev/metropolis/proto/api"
	cpb "metropolis.dev/metropolis/proto/common"
)

const (
	// HeartbeatInterval is how often nodes send heartbeats.
	HeartbeatInterval = 5 * time.Second
	// HeartbeatTimeout is how long after its last heartbeat a node is
	// considered unhealthy. Twice the interval tolerates one lost or late
	// heartbeat.
	HeartbeatTimeout = 2 * HeartbeatInterval
)

// heartbeats are the times the leader last heard from each node. They are
// kept in memory only: heartbeats are frequent, writing them to etcd would
// put the whole cluster's liveness traffic through consensus, and a new
// leader simply waits one timeout before judging nodes (see nodeHealth).
type heartbeats struct {
	mu   sync.Mutex
	last map[string]time.Time
}

func (h *heartbeats) record(id string, t time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.last == nil {
		h.last = make(map[string]time.Time)
	}
	h.last[id] = t
}

func (h *heartbeats) get(id string) (time.Time, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	t, ok := h.last[id]
	return t, ok
}

func (h *heartbeats) forget(id string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.last, id)
}

// nodeHealth judges a node's health at now from its state, its last
// heartbeat (zero if none during this leadership) and when the current
// leadership began. It also returns the time since the last heartbeat; for
// nodes without one, the time since leadership began, which is the most the
// leader can vouch for.
func nodeHealth(state cpb.NodeState, last, leaderSince, now time.Time) (apb.Node_Health, time.Duration) {
	if last.IsZero() {
		since := now.Sub(leaderSince)
		if state != cpb.NodeState_NODE_STATE_UP || since < HeartbeatTimeout {
			// A young leader cannot tell a dead node from one that has not
			// found the new leader yet.
			return apb.Node_HEALTH_UNKNOWN, since
		}
		return apb.Node_HEALTH_HEARTBEAT_TIMEOUT, since
	}
	since := now.Sub(last)
	switch {
	case state != cpb.NodeState_NODE_STATE_UP:
		return apb.Node_HEALTH_UNKNOWN, since
	case since > HeartbeatTimeout:
		return apb.Node_HEALTH_HEARTBEAT_TIMEOUT, since
	default:
		return apb.Node_HEALTH_HEALTHY, since
	}
}
