// Package benchcurator measures the cluster's control plane under many
// nodes: heartbeat round trips, listing all nodes, how fast a change to one
// node reaches every node watching the cluster, and what the control plane
// costs in CPU and memory. `make bench-curator` runs it for 100, 1,000 and
// 5,000 nodes against a control plane of 1 and of 3 members, and checks the
// figures at 5,000 nodes against the targets (heartbeat p99 under 50 ms,
// listing all nodes under 500 ms, control-plane memory under 1 GiB).
//
// # Two processes
//
// The control plane runs in a process of its own, so that the CPU time and
// resident memory the kernel accounts to it (/proc/<pid>/stat and
// /proc/<pid>/status) are the control plane's alone and not mixed with the
// simulated nodes'. It is started with curatortest, the curator's test
// harness: real curators, each with its own embedded etcd member on its own
// loopback address, bootstrapped and grown the way a cluster is. curatortest
// needs a testing.TB, which only the testing package can create, so the
// benchmark is a test binary: with -benchmark, its TestMain runs the
// benchmark instead of the tests, and for each run it starts itself again
// with -test.run=TestControlPlaneProcess as the control-plane process. That
// process writes what the benchmark needs to reach it (CA certificate,
// owner certificate and key, register ticket, curator addresses, leader,
// pprof address) into a file in a temporary directory, and runs until its
// standard input closes, which also ends it should the benchmark die.
//
// With 3 members, the three curators and their etcd members share that one
// process, so its figures are those of the whole control plane, not of the
// leader alone; the table labels them CP, and the row says which curator
// led (and whether that changed during the run). Every figure of a 1-member
// control plane is the leader's, including its etcd.
//
// # Simulated nodes
//
// Each simulated node has its own ed25519 key, registers with its bare key
// (RegisterNode), is approved by the owner (ApproveNode) and commits
// (CommitNode), which gives it its own certificate. It then opens its own
// mTLS connection to the leader with that certificate, on which it reports
// its status (UpdateNodeStatus), watches all nodes (Curator.Watch,
// nodes_in_cluster) and sends a heartbeat every curator.HeartbeatInterval
// (5 s) on a Heartbeat stream, the nodes' heartbeats spread evenly over the
// interval.
//
// Real nodes reach the leader through the metropolis resolver, which
// follows it over a CuratorLocal.GetCurrentLeader stream to every curator,
// each on a connection of its own. With -resolver the simulated nodes do
// the same, so the control plane serves 1+members connections per node
// instead of one. That is off by default because 5,000 nodes against 3
// members then need 20,000 connections in each process, more than the open
// files limit of this machine (20,000, which needs CAP_SYS_RESOURCE to
// raise), and because it measures the resolver's design as much as the
// control plane's: compare the two modes at 1 member to see what it costs.
//
// Setup runs in phases, 32 nodes at a time, with progress on stderr: all
// nodes register, then all connect and report status, then all open their
// watches (each receiving the state of all nodes), then all start
// heartbeating; so no watcher sees the cluster being built, which a real
// cluster never does at this rate either.
//
// # Measurements
//
// Once every node has had a heartbeat answered, a steady window (-window)
// measures heartbeat round trips (p50, p99), and the CPU time of both
// processes (in percent of one core) and their mean resident memory. After
// the window, with heartbeats going on, the owner lists all nodes
// (Management.GetNodes) five times (median), and one node changes its
// status five times, 2 s apart; for each change, the delay from sending it
// to each node's watch receiving it gives the fan-out p50, p99 and maximum
// over all changes and watchers. Peak memory is the process's VmHWM at the
// end, so it includes setup.
//
// Both processes share the machine's cores, so client-side work (the
// simulated nodes' TLS, decoding watch events, scheduling 5,000 heartbeat
// timers) is part of every latency, and the client's CPU is shown next to
// the control plane's; so is the machine's load average, as other load on
// the machine shows in the figures. Traffic is loopback only: addresses of
// simulated nodes come from 198.18.0.0/15 (reserved for benchmarks) and are
// only stored, never contacted. With -profile DIR, the control plane's CPU
// is profiled over the window and over the status changes, and its heap and
// goroutines after the measurements (pprof format, `go tool pprof`).
//
// # Running it
//
//	make bench-curator
//
// builds the test binary and runs the full matrix, which takes about 12
// minutes on an otherwise idle 2-core machine, most of it setting up the
// 5,000-node runs (registering 5,000 nodes, and every node's watch starting
// with the state of all 5,000). For one configuration, or machine-readable
// output:
//
//	go test -c -o out/benchcurator.test ./metropolis/test/benchcurator
//	out/benchcurator.test -benchmark -nodes 20 -members 1 -window 5s
//	out/benchcurator.test -benchmark -nodes 5000 -members 1 -json -profile out/prof
//
// Without -benchmark the binary runs its tests; TestSmoke runs 20 nodes
// against 1 member in about 20 seconds, so `make test` exercises the tool.
package benchcurator
