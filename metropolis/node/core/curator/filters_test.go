package curator

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	apb "metropolis.dev/metropolis/proto/api"
	cpb "metropolis.dev/metropolis/proto/common"
)

// sampleNodes are what filters are tested against: an UP worker that
// heartbeat 5 seconds ago, a NEW node without status, and an UP controller.
func sampleNodes() []*apb.Node {
	return []*apb.Node{
		{
			Id:                 "metropolis-00000000000000000000000000000001",
			State:              cpb.NodeState_NODE_STATE_UP,
			Status:             &cpb.NodeStatus{ExternalAddress: "10.1.0.3"},
			Roles:              &cpb.NodeRoles{KubernetesWorker: &cpb.NodeRoles_KubernetesWorker{}},
			Health:             apb.Node_HEALTH_HEALTHY,
			TimeSinceHeartbeat: durationpb.New(5 * time.Second),
			TpmUsage:           cpb.NodeTPMUsage_NODE_TPM_USAGE_PRESENT_AND_USED,
			Labels: &cpb.NodeLabels{Pairs: []*cpb.NodeLabels_Pair{
				{Key: "rack", Value: "a1"},
			}},
		},
		{
			Id:    "metropolis-00000000000000000000000000000002",
			State: cpb.NodeState_NODE_STATE_NEW,
			Roles: &cpb.NodeRoles{},
		},
		{
			Id:     "metropolis-00000000000000000000000000000003",
			State:  cpb.NodeState_NODE_STATE_UP,
			Status: &cpb.NodeStatus{ExternalAddress: "10.1.0.2"},
			Roles: &cpb.NodeRoles{
				ConsensusMember:      &cpb.NodeRoles_ConsensusMember{},
				KubernetesController: &cpb.NodeRoles_KubernetesController{},
			},
			Health:             apb.Node_HEALTH_HEARTBEAT_TIMEOUT,
			TimeSinceHeartbeat: durationpb.New(time.Minute),
		},
	}
}

func TestNodeFilter(t *testing.T) {
	for _, tc := range []struct {
		filter string
		// want are the indices of matching sample nodes.
		want []int
	}{
		{"", []int{0, 1, 2}},
		{"true", []int{0, 1, 2}},
		{"node.state == NODE_STATE_UP", []int{0, 2}},
		{"node.state == NODE_STATE_NEW", []int{1}},
		{"has(node.roles.kubernetes_worker)", []int{0}},
		{"has(node.roles.consensus_member) && has(node.roles.kubernetes_controller)", []int{2}},
		{"node.time_since_heartbeat < duration('6s') && node.time_since_heartbeat > duration('4s')", []int{0}},
		{"node.time_since_heartbeat > duration('7s')", []int{2}},
		{"node.id == 'metropolis-00000000000000000000000000000002'", []int{1}},
		{`node.status.external_address == "10.1.0.3"`, []int{0}},
		{"node.health == HEALTH_HEALTHY", []int{0}},
		{"node.tpm_usage == NODE_TPM_USAGE_PRESENT_AND_USED", []int{0}},
		{"node.labels.pairs.exists(p, p.key == 'rack' && p.value == 'a1')", []int{0}},
		{"node.id.endsWith('3')", []int{2}},
	} {
		f, err := compileNodeFilter(tc.filter)
		if err != nil {
			t.Errorf("compileNodeFilter(%q): %v", tc.filter, err)
			continue
		}
		var got []int
		for i, n := range sampleNodes() {
			ok, err := f.match(context.Background(), n)
			if err != nil {
				t.Errorf("filter %q on node %d: %v", tc.filter, i, err)
			}
			if ok {
				got = append(got, i)
			}
		}
		if !equalInts(got, tc.want) {
			t.Errorf("filter %q matched %v, want %v", tc.filter, got, tc.want)
		}
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestNodeFilterInvalid(t *testing.T) {
	for _, filter := range []string{
		"node.state ==",
		"node.nonexistent == 1",
		"node.id",
		"1 + 1",
		"unknown_variable",
		strings.Repeat("(", 100) + "true" + strings.Repeat(")", 100),
		"true || " + strings.Repeat("a", maxFilterLength),
		"node.id.matches('" + strings.Repeat("(a+)+", 300) + "')",
	} {
		_, err := compileNodeFilter(filter)
		if !errors.Is(err, errFilterInvalid) {
			t.Errorf("compileNodeFilter(%.60q) = %v, want errFilterInvalid", filter, err)
		}
	}
}

// TestNodeFilterCost checks that expensive filters are cut off by the cost
// limit instead of running for long.
func TestNodeFilterCost(t *testing.T) {
	for _, filter := range []string{
		// Nested comprehensions over a generated list: quadratic work.
		"[" + strings.Repeat("1,", 500) + "1].all(x, [" + strings.Repeat("1,", 500) + "1].all(y, x == y))",
		"[1,2,3,4,5,6,7,8,9,10].all(a, [1,2,3,4,5,6,7,8,9,10].all(b, [1,2,3,4,5,6,7,8,9,10].all(c, [1,2,3,4,5,6,7,8,9,10].all(d, [1,2,3,4,5,6,7,8,9,10].all(e, a+b+c+d+e > 0)))))",
	} {
		f, err := compileNodeFilter(filter)
		if err != nil {
			t.Fatalf("compileNodeFilter(%.60q): %v", filter, err)
		}
		start := time.Now()
		_, err = f.match(context.Background(), sampleNodes()[0])
		if !errors.Is(err, errFilterInvalid) {
			t.Errorf("filter %.60q: got %v, want cost limit error", filter, err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("filter %.60q ran for %v", filter, d)
		}
	}
}

// FuzzNodeFilter compiles and evaluates arbitrary filters against the sample
// nodes. Neither may panic, and evaluation must stay bounded.
func FuzzNodeFilter(f *testing.F) {
	for _, seed := range []string{
		"",
		"node.state == NODE_STATE_UP",
		"has(node.roles.kubernetes_worker)",
		"node.time_since_heartbeat < duration('6s')",
		`node.status.external_address == "10.1.0.3"`,
		"node.labels.pairs.exists(p, p.key == 'rack')",
		"node.id.matches('^metropolis-[0-9a-f]+$')",
		"[1,2,3].all(x, [1,2,3].all(y, x != y || x == y))",
		"size(node.id) > 3 ? node.health == HEALTH_UNKNOWN : false",
		"node.status.timestamp > timestamp('2020-01-01T00:00:00Z')",
		"int(node.pubkey.size()) / 0 == 1",
	} {
		f.Add(seed)
	}
	nodes := sampleNodes()
	f.Fuzz(func(t *testing.T, expr string) {
		filter, err := compileNodeFilter(expr)
		if err != nil {
			if !errors.Is(err, errFilterInvalid) {
				t.Fatalf("compile error not marked invalid: %v", err)
			}
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for _, n := range nodes {
			start := time.Now()
			_, err := filter.match(ctx, n)
			if err != nil && !errors.Is(err, errFilterInvalid) {
				t.Fatalf("filter %q: unexpected error %v", expr, err)
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Fatalf("filter %q took %v on one node", expr, d)
			}
		}
	})
}
