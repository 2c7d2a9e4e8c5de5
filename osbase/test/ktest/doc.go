// Package ktest runs a Go package's tests inside a VM, on the kernel a node
// runs, for code that needs kernel features the machine running the tests
// lacks or must not have touched: device-mapper, module loading, mounting
// filesystem images, network devices.
//
// Such code is only proven by running it against the real kernel, and the
// build machines have neither that kernel nor, in general, the privileges
// or modules to try. A VM has both, and under qemu's software emulation it
// boots in about ten seconds, cheap enough to put into `go test`.
//
// # How it works
//
// An ordinary host test calls Run. Run builds the package's test binary
// (`go test -c`) and a small init (ktestinit), both static, for x86-64; takes
// the kernel and the requested modules, with their dependencies and a module
// index, out of the pinned Debian kernel package (metropolis.dev/build/kernel,
// cached across runs); and packs them into a zstd-compressed cpio initramfs.
// It boots that with qemu (metropolis.dev/osbase/test/qemu) and streams the
// VM's console to the test's log. The kernel boots uncompressed, through its
// PVH entry point, which under software emulation halves the boot time of
// Debian's compressed kernel; ktest decompresses it once, into its cache.
//
// In the VM, the init mounts /proc, /sys, /dev (devtmpfs) and /tmp, loads
// the modules with metropolis.dev/osbase/kmod, and runs the test binary with
// -test.v, the -test.run pattern from Options.Run and the environment
// variable IN_KTEST=true, in /tmp, with its output on the console. Then it
// prints a result line, "KTEST-RESULT <nonce>: PASS" or "KTEST-RESULT
// <nonce>: FAIL <reason>", and reboots, which ends the VM. The nonce is random for
// each run, so no output of the tests can pass for the result line. The
// host fails the test unless the line says PASS, and also if no line comes
// within the time allowed (Options.Timeout and boot time, scaled with
// METROPOLIS_TEST_TIMEOUT_SCALE like every VM timeout; see qemu.Timeout).
//
// # Writing kernel tests
//
// The same test binary runs on the host and in the VM, so each test says
// where it belongs. Put the tests that need the VM's kernel next to the code
// they test, in a file such as ktest_test.go, and make them call OnlyInVM,
// which skips them on the host; name them so that a -test.run pattern
// selects them and nothing else. Add one host test that calls Run with that
// pattern and the kernel modules the tests need; Run skips itself in the
// VM. For example:
//
//	// TestKernel runs the TestVM tests in a VM.
//	func TestKernel(t *testing.T) {
//		ktest.Run(t, ktest.Options{
//			Run:     "^TestVM",
//			Modules: []string{"dm_mod"},
//		})
//	}
//
//	func TestVMCreateDevice(t *testing.T) {
//		ktest.OnlyInVM(t)
//		// ... runs as root, on the node's kernel, with dm_mod loaded.
//	}
//
// Each Run boots a VM, which costs about ten seconds of two shared cores, so
// a package should run all of its kernel tests in one Run. The tests in the
// VM see only what the initramfs holds: not the package's source directory
// or testdata, nor any tool of the host. What they need, they build in Go or
// get from the host through Options.Env or a disk (Options.Devices); a
// program from pinned Debian packages, such as the node's mkfs.xfs, comes
// with exactly its libraries through Options.Programs.
//
// # Host requirements
//
// Besides qemu (see metropolis.dev/osbase/test/qemu), Run needs the go
// command, which `go test` puts first in PATH, and on first use apt-get, to
// download the pinned kernel package into the cache of
// metropolis.dev/build/debian, and xz (Debian's xz-utils, which every
// Debian system has), to decompress the kernel. ktest unpacks the package
// next to that cache (about 400 MB), and keeps the decompressed kernel
// (about 65 MB) and one small tree per set of modules there.
package ktest
