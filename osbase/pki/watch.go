package pki

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// CRLWatcher follows the CRL of a CA as it changes. Get must not be called
// concurrently; Close may be called at any time.
type CRLWatcher struct {
	ca *Certificate
	cl *clientv3.Client

	// ctx lives until Close and bounds the etcd watch.
	ctx    context.Context
	cancel context.CancelFunc

	// caCert is the CA as stored in etcd, loaded by the first Get.
	caCert *x509.Certificate
	// events is the current etcd watch, nil when it needs to be
	// (re)established.
	events      clientv3.WatchChan
	cancelWatch context.CancelFunc
	// seen is the etcd modification revision of the last CRL returned.
	seen int64
}

// WatchCRL starts following the CRL of the CA c through cl. Like every
// other use of c, the first Get loads c with Ensure. The watcher holds
// resources in cl until it is closed.
func (c *Certificate) WatchCRL(cl *clientv3.Client) *CRLWatcher {
	ctx, cancel := context.WithCancel(context.Background())
	return &CRLWatcher{ca: c, cl: cl, ctx: ctx, cancel: cancel}
}

// Get returns the newest CRL that this watcher has not returned yet, blocking
// until there is one. Intermediate versions may be skipped; as every CRL
// contains all revocations before it, nothing is lost. Every CRL is checked
// against the CA's signature before it is returned.
func (w *CRLWatcher) Get(ctx context.Context) (*x509.RevocationList, error) {
	crl, err := w.get(ctx)
	if err != nil {
		return nil, fmt.Errorf("watching CRL of CA %q: %w", w.ca.Name, err)
	}
	return crl, nil
}

// Close stops the watcher and releases its etcd watch. A blocked Get returns
// an error.
func (w *CRLWatcher) Close() {
	w.cancel()
}

var errWatcherClosed = errors.New("watcher closed")

func (w *CRLWatcher) get(ctx context.Context) (*x509.RevocationList, error) {
	if w.caCert == nil {
		if _, err := w.ca.Ensure(ctx, w.cl); err != nil {
			return nil, err
		}
		w.caCert, _ = w.ca.loaded()
	}
	for {
		if w.ctx.Err() != nil {
			return nil, errWatcherClosed
		}
		if w.events == nil {
			crl, err := w.resync(ctx)
			if crl != nil || err != nil {
				return crl, err
			}
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-w.ctx.Done():
			return nil, errWatcherClosed
		case res, ok := <-w.events:
			if !ok || res.Err() != nil {
				// The watch ended, for example because etcd compacted the
				// revisions it was at or lost its leader. Catch up by
				// reading the current CRL instead.
				w.cancelWatch()
				w.events = nil
				continue
			}
			if crl, err := w.newest(res.Events); crl != nil || err != nil {
				return crl, err
			}
		}
	}
}

// resync reads the current CRL and watches for changes after it. It returns
// the CRL if it has not been returned before.
func (w *CRLWatcher) resync(ctx context.Context) (*x509.RevocationList, error) {
	key := w.ca.Namespace.crlKey(w.ca.Name)
	res, err := w.cl.Get(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("reading from etcd: %w", err)
	}
	// Without a leader, a member's watch could silently fall behind.
	watchCtx, cancel := context.WithCancel(clientv3.WithRequireLeader(w.ctx))
	w.events = w.cl.Watch(watchCtx, key, clientv3.WithRev(res.Header.Revision+1))
	w.cancelWatch = cancel
	if len(res.Kvs) == 0 || res.Kvs[0].ModRevision <= w.seen {
		return nil, nil
	}
	return w.accept(res.Kvs[0].Value, res.Kvs[0].ModRevision)
}

// newest returns the CRL from the newest write among events if it has not
// been returned before.
func (w *CRLWatcher) newest(events []*clientv3.Event) (*x509.RevocationList, error) {
	for i := len(events) - 1; i >= 0; i-- {
		ev := events[i]
		if ev.Type != mvccpb.PUT {
			continue
		}
		if ev.Kv.ModRevision <= w.seen {
			return nil, nil
		}
		return w.accept(ev.Kv.Value, ev.Kv.ModRevision)
	}
	return nil, nil
}

func (w *CRLWatcher) accept(der []byte, revision int64) (*x509.RevocationList, error) {
	// A CRL that fails to verify is skipped for good rather than returned
	// again by every Get.
	w.seen = revision
	return parseCRL(der, w.caCert)
}
