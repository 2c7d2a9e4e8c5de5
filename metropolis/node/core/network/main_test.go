package network

import (
	"testing"

	"metropolis.dev/osbase/net/netnstest"
)

func TestMain(m *testing.M) {
	netnstest.Main(m)
}
