package uki

import (
	"context"
	"encoding/binary"
	"math/rand/v2"
	"os/exec"
	"sync"
	"testing"
)

// pinnedStub is the stub from the pinned package, fetched once per run.
var pinnedStub = sync.OnceValues(func() ([]byte, error) {
	return PinnedStub(context.Background(), "../..")
})

func testStub(t *testing.T) []byte {
	t.Helper()
	stub, err := pinnedStub()
	if err != nil {
		t.Fatalf("getting the pinned stub: %v", err)
	}
	return stub
}

// fakeKernel returns random bytes with a setup header like that of Debian's
// kernel, which is all Build looks at.
func fakeKernel(size int) []byte {
	k := make([]byte, size)
	rand.NewChaCha8([32]byte{1}).Read(k)
	le := binary.LittleEndian
	le.PutUint16(k[offBootFlag:], bootFlag)
	copy(k[offHeaderMagic:], "HdrS")
	le.PutUint16(k[offProtocolVersion:], 0x20f)
	k[offRelocatable] = 1
	le.PutUint16(k[offXLoadFlags:], 0x7f)
	le.PutUint32(k[offCmdlineSize:], 2047)
	le.PutUint32(k[offHandoverOffset:], 0x190)
	return k
}

// requireTool fails the test if a program it checks the result with is
// missing.
func requireTool(t *testing.T, name, debianPackage string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		t.Fatalf("%s is missing: install Debian package %s (go run ./build/prereqs %s)", name, debianPackage, debianPackage)
	}
}
