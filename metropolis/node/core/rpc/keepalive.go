package rpc

import (
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"
)

// Keepalive of the cluster's gRPC connections. A node that loses power, or
// a VM that is killed, closes none of its connections: a peer that only
// waits for it, such as a client following the curator leader's address or
// a curator waiting for heartbeats, would wait for the kernel's TCP
// timeout, many minutes, or forever when it sends nothing. Clients ping
// every KeepaliveTime, even without calls in flight, and drop the
// connection when a ping is not answered within KeepaliveTimeout; servers
// allow pings that often (gRPC refuses a client that pings more often than
// every five minutes by default).
const (
	KeepaliveTime    = 10 * time.Second
	KeepaliveTimeout = 10 * time.Second
)

// ClientKeepalive is the dial option that makes a client keep its
// connections alive as the cluster's servers expect.
func ClientKeepalive() grpc.DialOption {
	return grpc.WithKeepaliveParams(keepalive.ClientParameters{
		Time:                KeepaliveTime,
		Timeout:             KeepaliveTimeout,
		PermitWithoutStream: true,
	})
}

// serverKeepalive allows the pings of ClientKeepalive, with room for
// timers that fire early.
func serverKeepalive() grpc.ServerOption {
	return grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{
		MinTime:             KeepaliveTime / 2,
		PermitWithoutStream: true,
	})
}
