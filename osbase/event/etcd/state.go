package etcd

import (
	"maps"
	"slices"

	"go.etcd.io/etcd/api/v3/mvccpb"
)

// state is what a watcher knows about its keys: which of them exist, and
// which changes it has not returned yet. Changes to the same key coalesce,
// so the memory it needs is bounded by the number of keys, not by how many
// changes happen while nobody calls Get.
type state struct {
	// known maps each existing key to the revision at which it was last
	// changed, as far as the watcher knows.
	known map[string]int64
	// queue holds the keys with unreturned changes, in the order they first
	// changed.
	queue []string
	// latest maps each key in queue to its newest contents, nil if deleted.
	latest map[string][]byte
	// backlog counts the keys at the front of queue that come from the
	// first read.
	backlog int
}

// reset replaces what the watcher knows by a fresh read of all its keys, in
// key order, and queues every difference. The first reset queues all
// existing keys, which become the backlog.
func (s *state) reset(kvs []*mvccpb.KeyValue) {
	first := s.known == nil
	if first {
		s.known = make(map[string]int64)
		s.latest = make(map[string][]byte)
	}
	gone := maps.Clone(s.known)
	for _, kv := range kvs {
		delete(gone, string(kv.Key))
		if s.known[string(kv.Key)] != kv.ModRevision {
			s.put(kv)
		}
	}
	// Sorted, so that the order of changes does not depend on map
	// iteration.
	for _, key := range slices.Sorted(maps.Keys(gone)) {
		s.delete(key)
	}
	if first {
		s.backlog = len(s.queue)
	}
}

// put records that kv is the current contents of its key.
func (s *state) put(kv *mvccpb.KeyValue) {
	key := string(kv.Key)
	s.known[key] = kv.ModRevision
	value := kv.Value
	// etcd does not tell an empty value from a missing one, but decoders
	// must be able to tell an empty key from a deleted one.
	if value == nil {
		value = []byte{}
	}
	s.enqueue(key, value)
}

// delete records that key no longer exists.
func (s *state) delete(key string) {
	delete(s.known, key)
	s.enqueue(key, nil)
}

func (s *state) enqueue(key string, value []byte) {
	if _, queued := s.latest[key]; !queued {
		s.queue = append(s.queue, key)
	}
	s.latest[key] = value
}

// next removes the oldest unreturned change from the queue and returns it.
// With backlogOnly, only changes from the first read are returned.
func (s *state) next(backlogOnly bool) (key string, value []byte, ok bool) {
	if len(s.queue) == 0 || backlogOnly && s.backlog == 0 {
		return "", nil, false
	}
	key = s.queue[0]
	s.queue = s.queue[1:]
	value = s.latest[key]
	delete(s.latest, key)
	if s.backlog > 0 {
		s.backlog--
	}
	return key, value, true
}
