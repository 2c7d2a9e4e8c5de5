// Package netnstest runs tests of networking code in network namespaces of
// their own, so that they can create links, addresses, routes and firewall
// rules, and listen on any port, without touching the machine's network.
//
// A network namespace belongs to a thread, and a Go program's goroutines
// move between threads, so a test cannot reliably move itself into a
// namespace. Instead, Main re-executes the test binary in a new network
// namespace, where every thread of the process starts out; code under test
// then needs no knowledge of namespaces. Further namespaces, for the other
// ends of links, are made with NewNamespace, and entered only for a
// function's duration by Namespace.Do, on a locked thread.
package netnstest

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"syscall"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// envInNamespace marks the re-executed test binary.
const envInNamespace = "NETNSTEST_IN_NAMESPACE"

// Main runs the tests of m, in a new network namespace if the test binary
// may create one (which takes root), and plainly otherwise; tests calling
// Require are then skipped. Call it from TestMain.
func Main(m *testing.M) {
	if InNamespace() {
		os.Exit(m.Run())
	}
	if os.Geteuid() != 0 {
		os.Exit(m.Run())
	}
	cmd := exec.Command("/proc/self/exe", os.Args[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Env = append(os.Environ(), envInNamespace+"=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Run(); err != nil {
		if exit, ok := err.(*exec.ExitError); ok {
			os.Exit(exit.ExitCode())
		}
		fmt.Fprintf(os.Stderr, "netnstest: running the tests in a new network namespace: %v\n", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// InNamespace reports whether the tests run in a namespace made by Main.
func InNamespace() bool {
	return os.Getenv(envInNamespace) == "1"
}

// Require skips t unless it runs in a namespace of its own, and brings that
// namespace's loopback interface up.
func Require(t testing.TB) {
	t.Helper()
	if !InNamespace() {
		t.Skip("needs its own network namespace, which takes root; see netnstest.Main")
	}
	lo, err := netlink.LinkByName("lo")
	if err != nil {
		t.Fatalf("finding lo: %v", err)
	}
	if err := netlink.LinkSetUp(lo); err != nil {
		t.Fatalf("bringing lo up: %v", err)
	}
}

// Namespace is a network namespace besides the test's own.
type Namespace struct {
	handle netns.NsHandle
	// Netlink configures the namespace from any thread.
	Netlink *netlink.Handle
}

// NewNamespace creates a network namespace, with its loopback interface up,
// which is deleted once the test and every socket created in it are done.
func NewNamespace(t testing.TB) *Namespace {
	t.Helper()
	handle, err := newNamespace()
	if err != nil {
		t.Fatalf("creating network namespace: %v", err)
	}
	// Route netlink only: the other families a handle opens by default
	// may be modules the kernel has not loaded.
	nl, err := netlink.NewHandleAt(handle, unix.NETLINK_ROUTE)
	if err != nil {
		handle.Close()
		t.Fatalf("opening netlink in the new namespace: %v", err)
	}
	t.Cleanup(func() {
		nl.Close()
		handle.Close()
	})
	n := &Namespace{handle: handle, Netlink: nl}
	lo, err := nl.LinkByName("lo")
	if err == nil {
		err = nl.LinkSetUp(lo)
	}
	if err != nil {
		t.Fatalf("bringing lo up in the new namespace: %v", err)
	}
	return n
}

// newNamespace creates a namespace on a thread of its own, as netns.New
// moves the calling thread into the namespace it creates.
func newNamespace() (netns.NsHandle, error) {
	type result struct {
		handle netns.NsHandle
		err    error
	}
	results := make(chan result, 1)
	go func() {
		// The goroutine ends with its thread locked if it cannot return
		// to the original namespace, which makes the runtime discard the
		// thread.
		runtime.LockOSThread()
		origin, err := netns.Get()
		if err != nil {
			results <- result{err: err}
			return
		}
		defer origin.Close()
		handle, err := netns.New()
		if err != nil {
			results <- result{err: err}
			return
		}
		if err := netns.Set(origin); err != nil {
			handle.Close()
			results <- result{err: fmt.Errorf("returning to the original namespace: %w", err)}
			return
		}
		runtime.UnlockOSThread()
		results <- result{handle: handle}
	}()
	r := <-results
	return r.handle, r.err
}

// FD returns the namespace's file descriptor, as netlink.LinkSetNsFd takes
// it to move a link into the namespace.
func (n *Namespace) FD() int {
	return int(n.handle)
}

// Do runs fn on a thread in the namespace. Sockets fn creates stay in the
// namespace, and can be used from any goroutine afterwards.
func (n *Namespace) Do(fn func() error) error {
	errs := make(chan error, 1)
	go func() {
		// The goroutine ends with its thread locked if it cannot return
		// to the original namespace, which makes the runtime discard the
		// thread.
		runtime.LockOSThread()
		origin, err := netns.Get()
		if err != nil {
			errs <- err
			return
		}
		defer origin.Close()
		if err := netns.Set(n.handle); err != nil {
			errs <- fmt.Errorf("entering namespace: %w", err)
			return
		}
		fnErr := fn()
		if err := netns.Set(origin); err != nil {
			errs <- fmt.Errorf("returning from namespace: %w", err)
			return
		}
		runtime.UnlockOSThread()
		errs <- fnErr
	}()
	return <-errs
}
