package curator

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/protobuf/proto"

	ipb "metropolis.dev/metropolis/node/core/curator/proto/api"
	ppb "metropolis.dev/metropolis/node/core/curator/proto/private"
	"metropolis.dev/osbase/supervisor"
)

// nodeCache mirrors every node record in the leader's memory, following etcd
// with a single watch.
//
// Every node of a cluster watches its own record, and several node services
// watch all records, so the leader serves about as many watchers as there
// are nodes, each of which sees every change. Giving each watcher its own
// etcd watch would multiply etcd's work and the leader's memory by the
// number of nodes, and every all-nodes watcher would first read every record
// from etcd. Instead the leader reads the records once and keeps them, and
// watchers only compare revisions in memory:
//
//   - A single-node watcher waits on a channel of its node alone, so a
//     change to one node wakes one watcher (plus the all-nodes watchers),
//     not every watcher in the cluster.
//   - An all-nodes watcher remembers the revision it has seen and asks for
//     the nodes changed since. A log of recent changes answers that without
//     scanning all nodes; a watcher that fell behind the log gets a full
//     scan, which is still correct because deleted nodes stay in the cache
//     as tombstones for as long as the leadership lasts.
//
// The cache also serves the leader's reads over all nodes (listing,
// uniqueness checks), which would otherwise read every record from etcd on
// every call. Reads are consistent with the leader's own writes: writers
// tell the cache which revision they wrote (expect), and readers wait for the
// cache to reach it.
type nodeCache struct {
	etcd *clientv3.Client

	mu sync.Mutex
	// rev is the etcd revision the cache reflects, 0 until loaded.
	rev int64
	// expected is the newest revision at which the leader wrote nodes.
	expected int64
	// nodes by ID, including tombstones of deleted nodes.
	nodes map[string]*cachedNode
	// log lists changes in revision order. It holds every change after
	// logFloor, and at most logLimit changes.
	log      []nodeChange
	logFloor int64
	logLimit int
	// changed is closed and replaced whenever rev advances.
	changed chan struct{}
	// nodeChanged holds, for nodes someone waits for, a channel closed and
	// removed when that node changes.
	nodeChanged map[string]chan struct{}
	// stopped is set once the cache stopped following etcd.
	stopped bool
}

// cachedNode is the state of one node at revision rev.
type cachedNode struct {
	id  string
	rev int64
	// node is the stored record, nil for a tombstone.
	node *ppb.Node
	// curator is node as the Curator API shows it, made once and shared by
	// every watcher.
	curator *ipb.Node
	// curatorSize is the encoded size of curator. Every watch opened sizes
	// every node to split its backlog into events, which at thousands of
	// nodes and watchers made sizing the bulk of a leader's work.
	curatorSize int
}

type nodeChange struct {
	rev int64
	id  string
}

// maxNodeChangeLog bounds the change log. Watchers further behind scan all
// nodes instead.
const maxNodeChangeLog = 16384

// errNodeCacheStopped is returned to readers once leadership ended.
var errNodeCacheStopped = errors.New("node cache stopped: this curator is no longer the leader")

func newNodeCache(cl *clientv3.Client) *nodeCache {
	return &nodeCache{
		etcd:        cl,
		nodes:       make(map[string]*cachedNode),
		changed:     make(chan struct{}),
		nodeChanged: make(map[string]chan struct{}),
		logLimit:    maxNodeChangeLog,
	}
}

// run follows etcd until ctx is done. It never fails: errors of etcd are
// retried, so that watchers are only ever cut off by the end of leadership.
func (c *nodeCache) run(ctx context.Context) error {
	c.mu.Lock()
	c.stopped = false
	c.mu.Unlock()
	defer c.stop()
	supervisor.Signal(ctx, supervisor.SignalHealthy)
	backoff := 100 * time.Millisecond
	for {
		err := c.follow(ctx)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		supervisor.Logger(ctx).Warningf("Following nodes in etcd failed, resynchronizing in %v: %v", backoff, err)
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
			return ctx.Err()
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// follow loads all nodes, then applies changes from an etcd watch until the
// watch fails.
func (c *nodeCache) follow(ctx context.Context) error {
	res, err := c.etcd.Get(ctx, nodePrefix, clientv3.WithPrefix())
	if err != nil {
		return fmt.Errorf("reading nodes: %w", err)
	}
	c.load(ctx, res)

	// Without an etcd leader, a member's watch could fall behind silently.
	watchCtx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	events := c.etcd.Watch(watchCtx, nodePrefix, clientv3.WithPrefix(), clientv3.WithRev(res.Header.Revision+1), clientv3.WithProgressNotify())
	for resp := range events {
		if err := resp.Err(); err != nil {
			return fmt.Errorf("watching nodes: %w", err)
		}
		c.applyEvents(ctx, resp)
	}
	return errors.New("watch ended")
}

// load applies a full read of all nodes, recording the differences to what
// the cache knew as changes.
func (c *nodeCache) load(ctx context.Context, res *clientv3.GetResponse) {
	c.mu.Lock()
	defer c.mu.Unlock()
	initial := c.rev == 0
	seen := make(map[string]bool, len(res.Kvs))
	var changes []*cachedNode
	for _, kv := range res.Kvs {
		id := strings.TrimPrefix(string(kv.Key), nodePrefix)
		seen[id] = true
		if e := c.nodes[id]; e != nil && e.rev == kv.ModRevision {
			continue
		}
		changes = append(changes, c.decode(ctx, id, kv.ModRevision, kv.Value))
	}
	for id, e := range c.nodes {
		if e.node != nil && !seen[id] {
			changes = append(changes, &cachedNode{id: id, rev: res.Header.Revision})
		}
	}
	slices.SortFunc(changes, func(a, b *cachedNode) int { return cmp.Compare(a.rev, b.rev) })
	for _, e := range changes {
		c.apply(e)
	}
	if initial {
		// Watchers start from a snapshot, so the log only has to cover
		// what comes after it.
		c.log = nil
		c.logFloor = res.Header.Revision
	}
	c.advance(res.Header.Revision)
}

func (c *nodeCache) applyEvents(ctx context.Context, resp clientv3.WatchResponse) {
	c.mu.Lock()
	defer c.mu.Unlock()
	rev := c.rev
	for _, ev := range resp.Events {
		id := strings.TrimPrefix(string(ev.Kv.Key), nodePrefix)
		if ev.Type == mvccpb.DELETE {
			c.apply(&cachedNode{id: id, rev: ev.Kv.ModRevision})
		} else {
			c.apply(c.decode(ctx, id, ev.Kv.ModRevision, ev.Kv.Value))
		}
		rev = max(rev, ev.Kv.ModRevision)
	}
	if resp.IsProgressNotify() {
		// Everything up to the header's revision has been delivered.
		rev = max(rev, resp.Header.Revision)
	}
	c.advance(rev)
}

// decode turns a stored record into a cache entry. A record that does not
// decode is logged and treated as absent: one corrupt record must not stop
// the cluster from being served.
func (c *nodeCache) decode(ctx context.Context, id string, rev int64, value []byte) *cachedNode {
	n, err := nodeUnmarshal(value)
	if err == nil && nodeIDOf(n) != id {
		err = fmt.Errorf("record of %s is stored under %s", nodeIDOf(n), id)
	}
	if err != nil {
		supervisor.Logger(ctx).Errorf("Ignoring node record %q: %v", id, err)
		return &cachedNode{id: id, rev: rev}
	}
	return newCachedNode(id, rev, n)
}

// newCachedNode is the cache entry of the stored record n.
func newCachedNode(id string, rev int64, n *ppb.Node) *cachedNode {
	cn := curatorNode(n)
	return &cachedNode{id: id, rev: rev, node: n, curator: cn, curatorSize: proto.Size(cn)}
}

// apply records e. c.mu must be held.
func (c *nodeCache) apply(e *cachedNode) {
	if prev := c.nodes[e.id]; prev == nil && e.node == nil {
		// Nobody can have seen a node the cache never knew about.
		return
	}
	c.nodes[e.id] = e
	c.log = append(c.log, nodeChange{rev: e.rev, id: e.id})
	if ch := c.nodeChanged[e.id]; ch != nil {
		close(ch)
		delete(c.nodeChanged, e.id)
	}
}

// advance moves the cache to rev and wakes watchers. c.mu must be held.
func (c *nodeCache) advance(rev int64) {
	if len(c.log) > c.logLimit {
		drop := len(c.log) - c.logLimit/2
		c.logFloor = c.log[drop-1].rev
		c.log = slices.Clone(c.log[drop:])
	}
	if rev <= c.rev {
		return
	}
	c.rev = rev
	close(c.changed)
	c.changed = make(chan struct{})
}

func (c *nodeCache) stop() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stopped = true
	close(c.changed)
	c.changed = make(chan struct{})
	for id, ch := range c.nodeChanged {
		close(ch)
		delete(c.nodeChanged, id)
	}
}

// expect tells the cache that nodes were written at rev, so that later reads
// wait until the cache has caught up with that write.
func (c *nodeCache) expect(rev int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.expected = max(c.expected, rev)
}

// waitCurrent waits until the cache reflects every node write the leader
// made before the call, and returns with c.mu held.
func (c *nodeCache) waitCurrent(ctx context.Context) error {
	c.mu.Lock()
	target := max(c.expected, 1)
	for {
		if c.stopped {
			c.mu.Unlock()
			return errNodeCacheStopped
		}
		if c.rev >= target {
			return nil
		}
		changed := c.changed
		c.mu.Unlock()
		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		}
		c.mu.Lock()
	}
}

// all returns every existing node, sorted by ID, and the revision they are
// at.
func (c *nodeCache) all(ctx context.Context) ([]*cachedNode, int64, error) {
	if err := c.waitCurrent(ctx); err != nil {
		return nil, 0, err
	}
	defer c.mu.Unlock()
	res := make([]*cachedNode, 0, len(c.nodes))
	for _, e := range c.nodes {
		if e.node != nil {
			res = append(res, e)
		}
	}
	sortByID(res)
	return res, c.rev, nil
}

// get returns the node id (nil if it does not exist).
func (c *nodeCache) get(ctx context.Context, id string) (*cachedNode, error) {
	if err := c.waitCurrent(ctx); err != nil {
		return nil, err
	}
	defer c.mu.Unlock()
	if e := c.nodes[id]; e != nil && e.node != nil {
		return e, nil
	}
	return nil, nil
}

// nextNode waits until the node id has an entry newer than rev, and returns
// it. The entry is a tombstone if the node was deleted.
func (c *nodeCache) nextNode(ctx context.Context, id string, rev int64) (*cachedNode, error) {
	if err := c.waitCurrent(ctx); err != nil {
		return nil, err
	}
	for {
		if c.stopped {
			c.mu.Unlock()
			return nil, errNodeCacheStopped
		}
		if e := c.nodes[id]; e != nil && e.rev > rev {
			c.mu.Unlock()
			return e, nil
		}
		ch := c.nodeChanged[id]
		if ch == nil {
			ch = make(chan struct{})
			c.nodeChanged[id] = ch
		}
		c.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		c.mu.Lock()
	}
}

// changesSince waits until nodes changed after rev, then returns the current
// entries of all of them (tombstones for deleted ones), sorted by ID, and
// the revision they are at.
func (c *nodeCache) changesSince(ctx context.Context, rev int64) ([]*cachedNode, int64, error) {
	c.mu.Lock()
	for {
		if c.stopped {
			c.mu.Unlock()
			return nil, 0, errNodeCacheStopped
		}
		if c.rev > rev {
			break
		}
		changed := c.changed
		c.mu.Unlock()
		select {
		case <-changed:
		case <-ctx.Done():
			return nil, 0, ctx.Err()
		}
		c.mu.Lock()
	}
	defer c.mu.Unlock()
	var res []*cachedNode
	if rev >= c.logFloor {
		seen := make(map[string]bool)
		first := sort.Search(len(c.log), func(i int) bool { return c.log[i].rev > rev })
		for _, ch := range c.log[first:] {
			if !seen[ch.id] {
				seen[ch.id] = true
				res = append(res, c.nodes[ch.id])
			}
		}
	} else {
		for _, e := range c.nodes {
			if e.rev > rev {
				res = append(res, e)
			}
		}
	}
	sortByID(res)
	return res, c.rev, nil
}

func sortByID(nodes []*cachedNode) {
	slices.SortFunc(nodes, func(a, b *cachedNode) int { return strings.Compare(a.id, b.id) })
}
