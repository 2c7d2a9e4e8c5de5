package qemu

import (
	"testing"
)

// StartT starts a VM for a test, like Start with the test's context, and
// fails the test if it cannot. The test's cleanup stops the VM and, if the
// test failed, logs the console transcript (unless Options.ConsoleLog
// already showed it) and how qemu ended.
func StartT(t testing.TB, opts Options, devices ...Device) *VM {
	t.Helper()
	vm, err := Start(t.Context(), opts, devices...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := vm.Stop(); err != nil {
			t.Error(err)
		}
		if !t.Failed() {
			return
		}
		name := opts.Name
		if name == "" {
			name = "(unnamed)"
		}
		if opts.ConsoleLog == nil {
			t.Logf("console of VM %s:\n%s", name, vm.Console().Transcript())
		}
		if err := vm.Wait(); err != nil {
			t.Logf("VM %s: %v", name, err)
		}
	})
	return vm
}
