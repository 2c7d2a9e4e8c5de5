package etcd

import (
	"slices"
	"testing"

	"go.etcd.io/etcd/api/v3/mvccpb"
)

func kv(key, value string, rev int64) *mvccpb.KeyValue {
	return &mvccpb.KeyValue{Key: []byte(key), Value: []byte(value), ModRevision: rev}
}

// drainState returns all queued changes as "key=value", or "key deleted".
func drainState(s *state, backlogOnly bool) []string {
	var changes []string
	for {
		key, value, ok := s.next(backlogOnly)
		if !ok {
			return changes
		}
		if value == nil {
			changes = append(changes, key+" deleted")
		} else {
			changes = append(changes, key+"="+string(value))
		}
	}
}

func TestState(t *testing.T) {
	for _, tc := range []struct {
		name string
		// steps change the state before draining it.
		steps       func(s *state)
		backlogOnly bool
		want        []string
	}{
		{
			name:  "first read is backlog in key order",
			steps: func(s *state) { s.reset([]*mvccpb.KeyValue{kv("a", "1", 2), kv("b", "2", 3)}) },
			want:  []string{"a=1", "b=2"},
		},
		{
			name:        "backlog only stops after first read",
			backlogOnly: true,
			steps: func(s *state) {
				s.reset([]*mvccpb.KeyValue{kv("a", "1", 2)})
				s.put(kv("b", "2", 3))
			},
			want: []string{"a=1"},
		},
		{
			name:        "backlog entry updated in place",
			backlogOnly: true,
			steps: func(s *state) {
				s.reset([]*mvccpb.KeyValue{kv("a", "1", 2), kv("b", "2", 3)})
				s.put(kv("a", "3", 4))
			},
			want: []string{"a=3", "b=2"},
		},
		{
			name: "changes to one key coalesce",
			steps: func(s *state) {
				s.reset(nil)
				s.put(kv("a", "1", 2))
				s.put(kv("b", "2", 3))
				s.put(kv("a", "3", 4))
				s.delete("b")
			},
			want: []string{"a=3", "b deleted"},
		},
		{
			name: "empty value is not a deletion",
			steps: func(s *state) {
				s.reset(nil)
				s.put(&mvccpb.KeyValue{Key: []byte("a"), ModRevision: 2})
			},
			want: []string{"a="},
		},
		{
			name: "reread queues only differences",
			steps: func(s *state) {
				s.reset([]*mvccpb.KeyValue{kv("a", "1", 2), kv("b", "2", 3), kv("c", "3", 4), kv("e", "5", 5)})
				drainState(s, false)
				s.reset([]*mvccpb.KeyValue{kv("a", "1", 2), kv("b", "4", 6), kv("d", "5", 7)})
			},
			want: []string{"b=4", "d=5", "c deleted", "e deleted"},
		},
		{
			name:        "reread is not backlog",
			backlogOnly: true,
			steps: func(s *state) {
				s.reset(nil)
				s.reset([]*mvccpb.KeyValue{kv("a", "1", 2)})
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var s state
			tc.steps(&s)
			if got := drainState(&s, tc.backlogOnly); !slices.Equal(got, tc.want) {
				t.Fatalf("got changes %q, want %q", got, tc.want)
			}
		})
	}
}
