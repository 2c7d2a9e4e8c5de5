package nanoswitch

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain checks that a stopped switch leaves no goroutine behind.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
