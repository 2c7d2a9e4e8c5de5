// Package bringup turns a Go program into the init of a Linux system: the
// first process of the system image, which mounts the kernel filesystems,
// sends every log line to the console, runs the program's supervision tree
// and reboots the machine when the program can no longer run.
//
// A program calls Main from its main function and never sees it return.
// Main plays one of two roles, chosen by the process ID:
//
//   - As PID 1 (the init role), it starts the same executable again as its
//     only child, forwards SIGTERM, SIGINT and SIGPWR to it, reaps every
//     process that ends, and reboots the machine when that child exits,
//     for whatever reason, unless it exits asking for the machine to be
//     powered off.
//   - In any other process (the program role), it does the actual bring-up:
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
// # Why two processes
//
// PID 1 inherits every orphaned process of the system and must reap them,
// or they stay zombies forever. The only way to reap a process one does not
// know about is wait4(-1), which takes the exit status of whichever child
// ended. In a program that also runs commands through os/exec, as a
// supervision tree does, that steals the status exec.Cmd.Wait is waiting
// for: Wait then fails with ECHILD, and a supervised process that exited
// with status 1 looks like one whose status was lost. No ordering fixes
// this, as both waits race in the kernel. Keeping a registry of our own
// children does not either, as libraries start processes without telling
// it.
//
// So PID 1 never starts processes that anything waits for: it runs one
// child, the program, and reaps everything. The program's own children are
// its children, not PID 1's, so only exec.Cmd.Wait collects them. Orphans
// (a daemon that forks and whose parent exits) are reparented to PID 1 and
// reaped there, because the program is not a child subreaper.
//
// The init role is the same executable rather than a separate tiny init
// binary: the system image keeps a single statically linked program, whose
// pages PID 1 shares with the program through the page cache, and whatever
// starts it (the kernel, or an initramfs switching root) stays unchanged. The cost is that PID 1
// runs the package initializers of the whole program before it gets to
// main, and keeps what they allocated: for a program the size of a cluster
// node's, 2.5 to 5 MiB of memory no other process shares (its RssAnon). The
// init role uses nothing but system calls and standard error: a PID 1 that
// exits, or panics, takes the kernel with it, so it does as little as
// possible.
package bringup
