// Package launch starts test clusters of Metropolis nodes in qemu virtual
// machines on one host, for end-to-end tests and for developers
// (cli/launch-cluster, cli/launch).
//
// A cluster is what an operator would build by hand, step by step, through
// the same API and client code metroctl uses (metroctl/core):
//
//  1. The nodes' network is a nanoswitch in this process: every VM's network
//     card is a qemu stream socket on one of its ports; it serves DHCP (node 0
//     asks first and gets 10.1.0.2) and lets the host in through DialContext
//     and a SOCKS5 proxy, with a packet capture in the launch directory.
//  2. An owner key is created in a metroctl configuration directory.
//  3. Node 0 boots the node image with NodeParameters that bootstrap a
//     cluster for that key. The parameters come through qemu's fw_cfg, so one
//     image built by build/mkimage serves every node.
//  4. The launcher fetches the cluster CA from node 0 (trusting it on first
//     use: it started the only node there is, on a network nobody else is
//     on), escrows the owner certificate and stores both in the metroctl
//     directory, so that metroctl works against the cluster as it is.
//  5. Nodes 1 to N-1 boot at the same time with parameters that register
//     them (a register ticket and the cluster directory), are approved once
//     they are NEW, and commit; the launch ends when every node is UP and
//     HEALTHY. Each node carries the label test-node-number=<index>, which
//     is how the launcher tells registered nodes apart before it knows their
//     IDs.
//
// Every node is a machine with its own directory (node-N in the launch
// directory): a qcow2 overlay of the image as its disk, its OVMF variables
// and its swtpm state, and a fixed MAC address. Restarting a node
// (RebootNode, ShutdownNode and StartNode) therefore boots the same machine,
// which finds its sealed configuration, unseals it with the same TPM and
// gets the same address. Consoles go to node-N.txt in the launch directory
// unless ClusterOptions.NodeConsole takes them.
//
// After the launch, Cluster is the test's handle: clients for the curator
// leader (which follow the leader across nodes) and for single nodes'
// NodeManagement, both authenticated as the owner and made through the
// switch; waits for health; role changes; node restarts; and the metroctl
// flags for people and scripts. Every wait polls with a deadline chosen for
// software emulation on a small machine and scaled by
// METROPOLIS_TEST_TIMEOUT_SCALE (see osbase/test/qemu), gives up at once when
// a node's VM ends, and says in its error what it was waiting for, what it
// saw last and the last console lines of the nodes involved.
//
// The defaults suit test clusters: TPM mode "required", as every node has a
// TPM, and storage security "needs-insecure", as a test cluster holds no
// secrets and encrypting (let alone authenticating) the data partition would
// dominate boot time under software emulation.
package launch
