// Package nodetest boots the real node image in virtual machines, one node
// at a time, the way a machine boots it (OVMF firmware, the signed UKI from
// the ESP, an swtpm TPM), on a network the test provides, and checks what the
// node core does with them: it gets an address by DHCP, resolves names
// through its own resolver, synchronises its clock, bootstraps a one-node
// cluster, setting up its data partition, on the first boot, rejoins that
// cluster with the configuration it sealed with the TPM on the next, and
// refuses to when the TPM is another one, without touching the data.
//
// The test binary runs in a network namespace of its own (osbase/net/netnstest),
// where it creates a tap device for the VM and serves on its host side, at
// 10.99.0.1: DHCP (github.com/insomniacslk/dhcp) handing out 10.99.0.10 with
// itself as router, name server and NTP server; DNS (github.com/miekg/dns)
// answering one test name; and NTP (osbase/net/sntp/sntptest). qemu runs in
// the same namespace and connects the VM's virtio card to the tap device. The
// machine's own network is never touched.
//
// The image is built once per test binary, before it enters the namespace
// (the build may have to fetch pinned packages), with node parameters that
// bootstrap a cluster requiring a TPM and insecure storage, and with metropolis.dns_check on the kernel command line, naming
// the test name. The VMs boot from a qcow2 overlay of it that is larger than
// the image, so that the node grows its data partition into the space, as on
// a real disk.
//
// Every boot ends the way an operator would end it: ctrl-alt-del,
// pressed through qemu's monitor, which the node's init turns into a graceful
// stop and a reboot, which ends qemu. The next
// boot of the same machine uses the same disk, TPM state and firmware
// variables.
//
// Storage modes: the node is alone in its cluster, so it can only rejoin
// with storage its cluster does not have to unlock: the cluster's half of
// the key of an encrypted partition comes from a curator, and the only one
// runs on this node, from that partition. A cluster of one node with
// encrypted storage does not survive a reboot, as in Monogon OS; encrypted
// nodes rejoining a cluster are tested with several nodes (metropolis/test/e2e),
// and the storage modes themselves by localstorage's own VM tests
// (osbase/test/ktest). The TPM still seals the node's configuration, so a
// boot with another TPM still fails. A boot under TCG takes 30-90 s, so the
// test goes through one machine's whole life: first boot, reboot, a boot
// with the wrong TPM, and a boot with the right one again. That the data
// survived is told by the birth time of the data partition's filesystem,
// which the node logs: the same on every boot after the first.
//
// BenchmarkBoot measures, from qemu's start, how long the first boot takes to
// get an address and to mount its storage, and logs the core's and PID 1's
// memory; run it with -bench=Boot -benchtime=5x for medians of five boots.
package nodetest
