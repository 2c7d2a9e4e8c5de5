package main

import (
	"context"
	"net"
	"strings"
	"time"

	"metropolis.dev/metropolis/node/core/network"
	"metropolis.dev/osbase/event"
	"metropolis.dev/osbase/supervisor"
)

// nodeResolver is where the network service serves DNS to the node.
const nodeResolver = "127.0.0.1:53"

// Retry delays of the DNS check.
const (
	dnsCheckTimeout  = 5 * time.Second
	dnsCheckMinDelay = time.Second
	dnsCheckMaxDelay = 30 * time.Second
)

// dnsCheck returns a runnable that resolves name through the node's own
// resolver once the node has an address, retrying until it gets an answer,
// and logs the answer (see paramDNSCheck).
func dnsCheck(name string, status event.Watchable[*network.Status]) supervisor.Runnable {
	return func(ctx context.Context) error {
		w := status.Watch()
		defer w.Close()
		if _, err := w.Get(ctx, event.Filter(func(s *network.Status) bool { return s.ExternalAddress != nil })); err != nil {
			return err
		}
		resolver := &net.Resolver{
			PreferGo: true,
			Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, network, nodeResolver)
			},
		}
		log := supervisor.Logger(ctx)
		delay := dnsCheckMinDelay
		for {
			lctx, cancel := context.WithTimeout(ctx, dnsCheckTimeout)
			addrs, err := resolver.LookupHost(lctx, name)
			cancel()
			if err == nil {
				log.Infof("DNS check: %s resolves to %s through the node's resolver at %s", name, strings.Join(addrs, ", "), nodeResolver)
				supervisor.Signal(ctx, supervisor.SignalDone)
				return nil
			}
			log.Warningf("DNS check: resolving %s through the node's resolver at %s: %v; retrying in %v", name, nodeResolver, err, delay)
			t := time.NewTimer(delay)
			select {
			case <-ctx.Done():
				t.Stop()
				return ctx.Err()
			case <-t.C:
			}
			delay = min(2*delay, dnsCheckMaxDelay)
		}
	}
}
