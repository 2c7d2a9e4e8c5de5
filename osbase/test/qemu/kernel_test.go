package qemu

import (
	"context"
	"sync"
	"testing"
	"time"

	"metropolis.dev/build/kernel"
)

// repoRoot is the repository root, relative to this package's directory,
// where tests run.
const repoRoot = "../../.."

// testKernel returns the path of the pinned Debian kernel (a bzImage),
// fetched and unpacked into the build cache on first use on a machine.
func testKernel(t *testing.T) string {
	t.Helper()
	path, err := pinnedKernel()
	if err != nil {
		t.Fatalf("getting the pinned kernel: %v", err)
	}
	return path
}

var pinnedKernel = sync.OnceValues(func() (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	pkg, err := kernel.Pinned(ctx, repoRoot)
	if err != nil {
		return "", err
	}
	return pkg.Vmlinuz(), nil
})
