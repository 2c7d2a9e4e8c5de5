package etcd

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// recordingClient passes requests through to etcd but lets tests observe and
// break the watches a Value starts. Each of its watches runs through a
// forwarding goroutine, so that breaking one closes its channel at once,
// like a lost connection, instead of whenever etcd's client gets to it.
type recordingClient struct {
	*clientv3.Client

	mu      sync.Mutex
	watches []*recordedWatch
	// added is closed when a watch is added to watches.
	added chan struct{}
}

type recordedWatch struct {
	// ctx is the context the Value passed to Watch.
	ctx context.Context
	// compacted is closed once the watch delivered a compaction error.
	compacted chan struct{}
	broken    chan struct{}
	done      chan struct{}
}

func (c *recordingClient) Watch(ctx context.Context, key string, opts ...clientv3.OpOption) clientv3.WatchChan {
	rw := &recordedWatch{
		ctx:       ctx,
		compacted: make(chan struct{}),
		broken:    make(chan struct{}),
		done:      make(chan struct{}),
	}
	c.mu.Lock()
	c.watches = append(c.watches, rw)
	if c.added != nil {
		close(c.added)
		c.added = nil
	}
	c.mu.Unlock()

	innerCtx, cancel := context.WithCancel(ctx)
	in := c.Client.Watch(innerCtx, key, opts...)
	out := make(chan clientv3.WatchResponse)
	go func() {
		defer close(rw.done)
		defer close(out)
		defer cancel()
		for {
			select {
			case res, ok := <-in:
				if !ok {
					return
				}
				if res.CompactRevision != 0 {
					close(rw.compacted)
				}
				select {
				case out <- res:
				case <-rw.broken:
					return
				case <-ctx.Done():
					return
				}
			case <-rw.broken:
				return
			}
		}
	}()
	return out
}

// started returns the watches started so far.
func (c *recordingClient) started() []*recordedWatch {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.watches)
}

// waitStarted waits until the i-th watch (counting from zero) was started
// and returns it.
func (c *recordingClient) waitStarted(t *testing.T, i int) *recordedWatch {
	t.Helper()
	timeout := time.After(testTimeout)
	for {
		c.mu.Lock()
		if i < len(c.watches) {
			defer c.mu.Unlock()
			return c.watches[i]
		}
		if c.added == nil {
			c.added = make(chan struct{})
		}
		added := c.added
		c.mu.Unlock()
		select {
		case <-added:
		case <-timeout:
			t.Fatalf("etcd watch %d not started after %v", i, testTimeout)
		}
	}
}

// breakWatch closes the watch's channel as if its connection was lost, and
// returns once it is closed.
func (rw *recordedWatch) breakWatch() {
	close(rw.broken)
	<-rw.done
}
