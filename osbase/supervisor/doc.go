// Package supervisor runs the long-lived parts of an operating system as a
// tree of supervised runnables, in the spirit of Erlang/OTP supervision trees.
//
// # Model
//
// A Runnable is a plain func(ctx) error. It is started either by New (the
// root, whose DN is "root") or by its parent through Run or RunGroup, and it
// is identified by its distinguished name (DN), eg. "root.network.dhcp", which
// is also its DN in the log tree. A runnable tells the supervisor how it is
// doing with Signal:
//
//   - SignalHealthy: it is up and serving, and keeps running until its
//     context is canceled.
//   - SignalDone: it has finished its work (or has finished starting its
//     children) and will return nil. Its children keep running.
//
// Any other way of ending is a failure: returning an error, panicking, or
// returning nil without having signalled Done. A failed runnable, all the
// members of its group and everything below them are canceled, and once all
// of their goroutines have returned the group is started afresh, after an
// exponential backoff.
//
// Why: a subsystem that hits an unexpected condition does not need to know how
// to recover from it. It returns an error and is rebuilt from scratch,
// together with everything that depended on its state (its children and the
// runnables grouped with it), while the rest of the system keeps running.
// Restarts only happen once the old incarnation has completely stopped, so two
// incarnations of the same runnable never run at the same time, and a
// runnable never has to guard against its own ghost.
//
// # States
//
// Every node of the tree is in one of these states:
//
//	            started by parent (Run/RunGroup) or New
//	                        |
//	                        v
//	   +-----------------> NEW ------SignalDone------+
//	   |                    |                        |
//	   |              SignalHealthy                  |
//	   |                    v                        v
//	   |                 HEALTHY ---SignalDone---> DONE
//	   |                    |                        |
//	   |                    | error, panic, nil      | error, panic,
//	   |                    | without SignalDone,    | group member died
//	   |                    | group member died      |
//	   |                    v                        |
//	   +--- restart ----- DEAD <---------------------+
//	   (backoff elapsed and every goroutine of the
//	    group's subtrees has returned)
//
//	NEW, HEALTHY, DONE, DEAD --(an ancestor died, or the supervisor's
//	                            context was canceled)--> CANCELED
//
// DEAD and CANCELED nodes have their context canceled. CANCELED is final: the
// node is dropped when its parent is restarted and starts its children again.
// A DONE node whose runnable returned nil stays DONE, and its context stays
// valid, as its children run in it.
//
// Groups started with RunGroup share their fate: when one member dies, all of
// them are marked DEAD, and they are restarted together. Run starts a group of
// one. The backoff belongs to the group: it starts at the configured initial
// delay, doubles with every failure up to the maximum, is jittered by ±25% so
// that runnables failing together do not retry in lockstep, and starts again
// from the initial delay once the failing runnable had been healthy for at
// least the maximum delay before dying.
//
// # Implementation
//
// A single goroutine, the processor, owns the whole tree. Runnables, timers
// and API calls send it messages and it applies them one at a time, so the
// state machine above is plain sequential code without locks. Runnables only
// ever wait for the processor, never the other way around, so a stuck
// runnable can delay its own restart but never the rest of the tree.
package supervisor
