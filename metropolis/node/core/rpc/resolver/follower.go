package resolver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/resolver"

	ipb "metropolis.dev/metropolis/node/core/curator/proto/api"
	"metropolis.dev/metropolis/node/core/rpc"
)

// Backoff between attempts to ask an unreachable curator. The maximum is
// short enough that a curator coming back is noticed within seconds.
const (
	minRetryDelay = 250 * time.Millisecond
	maxRetryDelay = 10 * time.Second
)

// follower follows the curator leader on behalf of one ClientConn. It runs a
// goroutine per known curator, each following that curator's
// GetCurrentLeader stream and sending what it hears to the main loop, which
// decides who the leader is and tells the ClientConn.
type follower struct {
	r        *Resolver
	cc       resolver.ClientConn
	dialOpts []grpc.DialOption

	ctx     context.Context
	cancel  context.CancelFunc
	reports chan report
	wg      sync.WaitGroup
}

// report is what one curator said, or that it stopped saying anything.
type report struct {
	endpoint NodeEndpoint
	// leader is the curator's latest word on the leader, or nil if its
	// stream ended with err.
	leader *ipb.GetCurrentLeaderResponse
	err    error
}

// view is the latest report of one curator whose stream is open.
type view struct {
	leader *ipb.GetCurrentLeaderResponse
	// seq orders views by when they were received.
	seq uint64
}

func newFollower(r *Resolver, cc resolver.ClientConn, opts resolver.BuildOptions) *follower {
	ctx, cancel := context.WithCancel(r.ctx)
	f := &follower{
		r:        r,
		cc:       cc,
		dialOpts: []grpc.DialOption{grpc.WithTransportCredentials(opts.DialCreds), rpc.ClientKeepalive()},
		ctx:      ctx,
		cancel:   cancel,
		reports:  make(chan report),
	}
	if opts.Dialer != nil {
		f.dialOpts = append(f.dialOpts, grpc.WithContextDialer(opts.Dialer))
	}
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		f.run()
	}()
	return f
}

// ResolveNow does nothing, for resolver.Resolver: curators push leader
// changes as they happen, so there is nothing to ask again.
func (f *follower) ResolveNow(resolver.ResolveNowOptions) {}

// Close stops following, for resolver.Resolver.
func (f *follower) Close() {
	f.cancel()
	f.wg.Wait()
}

func (f *follower) run() {
	known := f.r.known.Watch()
	defer known.Close()
	updates := make(chan curators)
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		for {
			c, err := known.Get(f.ctx)
			if err != nil {
				return
			}
			select {
			case updates <- c:
			case <-f.ctx.Done():
				return
			}
		}
	}()

	var (
		followed = map[NodeEndpoint]bool{}
		// failing are the followed curators whose last attempt failed.
		failing   = map[NodeEndpoint]bool{}
		views     = map[NodeEndpoint]view{}
		overrides map[string]NodeEndpoint
		seq       uint64
		// current is the address the ClientConn was last pointed at.
		current string
	)
	for {
		select {
		case <-f.ctx.Done():
			return
		case c := <-updates:
			overrides = c.overrides
			for ep := range c.endpoints {
				if !followed[ep] {
					followed[ep] = true
					f.wg.Add(1)
					go func() {
						defer f.wg.Done()
						f.followCurator(ep)
					}()
				}
			}
		case rep := <-f.reports:
			if rep.leader == nil {
				delete(views, rep.endpoint)
				failing[rep.endpoint] = true
				if current == "" && len(views) == 0 && len(failing) == len(followed) {
					// Without any leader known yet, and no curator left
					// to ask, let calls fail with the reason rather than
					// wait.
					f.cc.ReportError(fmt.Errorf("no curator told where the leader is; %s: %w", rep.endpoint, rep.err))
				}
				break
			}
			delete(failing, rep.endpoint)
			seq++
			views[rep.endpoint] = view{leader: rep.leader, seq: seq}
			if f.r.curatorUpdater {
				f.r.AddEndpoint(NodeByHostPort(rep.leader.LeaderHost, int(rep.leader.LeaderPort)))
			}
		}

		leader := chooseLeader(views)
		if leader == nil {
			continue
		}
		addr := net.JoinHostPort(leader.LeaderHost, strconv.Itoa(int(leader.LeaderPort)))
		if ep, ok := overrides[leader.LeaderNodeId]; ok {
			addr = ep.String()
		}
		if addr == current {
			continue
		}
		f.r.logger.Info("Following curator leader", "node", leader.LeaderNodeId, "address", addr)
		// The resolver only ever learns by being told, so an error (no
		// usable address) cannot be fixed by asking again.
		_ = f.cc.UpdateState(resolver.State{Addresses: []resolver.Address{{Addr: addr}}})
		current = addr
	}
}

// chooseLeader returns the leader as the curators see it: a curator that
// says it is the leader itself is believed first, and among equally
// believable reports the newest wins. It returns nil without reports.
func chooseLeader(views map[NodeEndpoint]view) *ipb.GetCurrentLeaderResponse {
	var (
		best     view
		bestSelf bool
	)
	for _, v := range views {
		self := v.leader.LeaderNodeId == v.leader.ThisNodeId
		if best.leader == nil || (self && !bestSelf) || (self == bestSelf && v.seq > best.seq) {
			best, bestSelf = v, self
		}
	}
	return best.leader
}

// followCurator follows the GetCurrentLeader stream of the curator at ep
// until the follower stops, reconnecting with backoff.
func (f *follower) followCurator(ep NodeEndpoint) {
	conn, err := grpc.NewClient("passthrough:///"+ep.String(), f.dialOpts...)
	if err != nil {
		// Only a malformed address gets here, which no retry fixes.
		f.send(report{endpoint: ep, err: fmt.Errorf("connecting: %w", err)})
		return
	}
	defer conn.Close()
	cl := ipb.NewCuratorLocalClient(conn)

	delay := minRetryDelay
	for {
		heard, err := f.followStream(cl, ep)
		if f.ctx.Err() != nil {
			return
		}
		f.r.logger.Debug("Lost curator leader stream", "endpoint", ep.String(), "error", err)
		if !f.send(report{endpoint: ep, err: err}) {
			return
		}
		if heard {
			delay = minRetryDelay
		}
		t := time.NewTimer(delay)
		select {
		case <-f.ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		delay = min(2*delay, maxRetryDelay)
	}
}

// followStream reports every message of one GetCurrentLeader stream of the
// curator at ep. It returns whether it heard anything and why the stream
// ended.
func (f *follower) followStream(cl ipb.CuratorLocalClient, ep NodeEndpoint) (bool, error) {
	ctx, cancel := context.WithCancel(f.ctx)
	defer cancel()
	stream, err := cl.GetCurrentLeader(ctx, &ipb.GetCurrentLeaderRequest{})
	if err != nil {
		return false, err
	}
	heard := false
	for {
		res, err := stream.Recv()
		if err != nil {
			return heard, err
		}
		if err := validLeader(res); err != nil {
			return heard, fmt.Errorf("curator reported an unusable leader: %w", err)
		}
		heard = true
		if !f.send(report{endpoint: ep, leader: res}) {
			return heard, f.ctx.Err()
		}
	}
}

func validLeader(res *ipb.GetCurrentLeaderResponse) error {
	switch {
	case res.LeaderNodeId == "":
		return errors.New("no leader node ID")
	case res.LeaderHost == "":
		return errors.New("no leader host")
	case res.LeaderPort <= 0 || res.LeaderPort > 65535:
		return fmt.Errorf("leader port %d out of range", res.LeaderPort)
	}
	return nil
}

// send hands rep to the main loop, unless the follower stops first.
func (f *follower) send(rep report) bool {
	select {
	case f.reports <- rep:
		return true
	case <-f.ctx.Done():
		return false
	}
}
