// Package bringup turns a Go program into the init of a Linux system: the
// first process of the system image, which mounts the kernel filesystems,
// sends every log line to the console, runs the program's supervision tree
// and reboots the machine when the program can no longer run.
//
// A program calls Main from its main function and never sees it return.
// Main plays one of two roles, chosen by the process ID:
//
//   - As PID 1 (the init role), it runs the same executable again as its
//     only child, with package pid1: it forwards SIGTERM, SIGINT and SIGPWR
//     to it, reaps every process that ends, and reboots the machine when
//     that child exits, for whatever reason, unless it exits asking for the
//     machine to be powered off. A system may instead start the program as
//     the child of a PID 1 of its own that does the same, as Metropolis's
//     stage-1 does after switching root (see pid1 for why PID 1 runs the
//     program as a child rather than doing the work itself).
//   - As a child of PID 1 (the program role), it does the actual bring-up:
//     mounts /proc, /sys, /dev, /dev/pts, /dev/shm, cgroup2, efivarfs when
//     booted by UEFI, and tmpfs on /tmp, /run and the caller's directories;
//     raises RLIMIT_NOFILE; creates the log tree and starts writing it to
//     the console; and starts the supervisor with the caller's root
//     runnable. A fatal error in bring-up, or a panic escaping it, is
//     logged with its cause (and the panicking goroutine's stack), the
//     console is drained, and the process exits, which makes the init role
//     sync and reboot. SIGTERM or SIGINT (ctrl-alt-del) stops the tree
//     gracefully first; SIGPWR does too, and then powers the machine off.
//     Reboot and PowerOff send the program those signals, for its services
//     that restart or turn off the machine on request.
//
// Any other process is refused: started by hand on a developer's machine,
// the program role would mount over that machine's /tmp and /run.
//
// # Which PID 1
//
// When the kernel starts the program directly, the same executable plays
// both roles. The cost is that PID 1 runs the package initializers of the
// whole program before it gets to main, and keeps what they allocated: for
// a program the size of a cluster node's, 2.5 to 5 MiB of memory no other
// process shares, and under emulation (qemu without KVM) a few tenths of a
// second of boot, as the child runs them all again. A system with an
// initramfs avoids both by keeping its small init as PID 1 (pid1.Run) and
// starting the program as its child: Metropolis's stage-1, as PID 1, holds
// 2.2 MiB of anonymous memory.
package bringup
