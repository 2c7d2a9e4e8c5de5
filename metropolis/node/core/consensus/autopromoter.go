package consensus

import (
	"context"
	"errors"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"

	"metropolis.dev/osbase/supervisor"
)

// autopromoteInterval is how often learners are considered for promotion.
// Looking at them costs nothing but reading the local member's state.
const autopromoteInterval = time.Second

// autopromote is a runnable that promotes learners to voting members once
// they have caught up with the leader. It runs on every member but only acts
// on the leader, which is the one that knows how far learners have got.
// etcd itself refuses to promote a learner that is not in sync, so a refused
// promotion is simply tried again later.
func (s *Status) autopromote(ctx context.Context) error {
	supervisor.Signal(ctx, supervisor.SignalHealthy)
	t := time.NewTicker(autopromoteInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
		s.promoteLearners(ctx)
	}
}

func (s *Status) promoteLearners(ctx context.Context) {
	srv := s.etcd.Server
	if srv.Leader() != srv.ID() {
		return
	}
	l := supervisor.Logger(ctx)
	for _, m := range srv.Cluster().Members() {
		if !m.IsLearner {
			continue
		}
		_, err := s.cl.MemberPromote(ctx, uint64(m.ID))
		switch {
		case err == nil:
			l.Infof("Promoted learner %s (etcd member %s) to a voting member.", m.Name, m.ID)
		case errors.Is(err, rpctypes.ErrMemberLearnerNotReady):
			l.V(1).Infof("Learner %s (etcd member %s) has not caught up yet.", m.Name, m.ID)
		case ctx.Err() != nil:
			return
		default:
			l.Warningf("Promoting learner %s (etcd member %s) failed, will retry: %v", m.Name, m.ID, err)
		}
	}
}
