package main

import (
	"os"
	"testing"

	"google.golang.org/protobuf/proto"

	"metropolis.dev/metropolis/node/core/localstorage"
	"metropolis.dev/metropolis/node/core/nodeparams"
	"metropolis.dev/metropolis/proto/api"
	netpb "metropolis.dev/osbase/net/proto"
)

func TestNetworkConfig(t *testing.T) {
	root, err := localstorage.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := root.ESP.Metropolis.MkdirAll(0o755); err != nil {
		t.Fatal(err)
	}
	static := &netpb.Net{NtpServers: []string{"10.0.0.123"}}

	// No parameters and nothing kept: DHCP.
	if cfg, err := networkConfig(root, nil); cfg != nil || err != nil {
		t.Fatalf("got %v, %v, want DHCP", cfg, err)
	}
	// Parameters with a configuration: used, and kept for later.
	params := &nodeparams.Loaded{Parameters: &api.NodeParameters{NetworkConfig: static}}
	if cfg, err := networkConfig(root, params); err != nil || !proto.Equal(cfg, static) {
		t.Fatalf("got %v, %v, want the parameters' configuration", cfg, err)
	}
	if cfg, err := networkConfig(root, nil); err != nil || !proto.Equal(cfg, static) {
		t.Fatalf("later boot: got %v, %v, want the kept configuration", cfg, err)
	}
	// Parameters without one: DHCP, also on later boots.
	if cfg, err := networkConfig(root, &nodeparams.Loaded{Parameters: &api.NodeParameters{}}); cfg != nil || err != nil {
		t.Fatalf("got %v, %v, want DHCP", cfg, err)
	}
	if cfg, err := networkConfig(root, nil); cfg != nil || err != nil {
		t.Fatalf("later boot: got %v, %v, want DHCP", cfg, err)
	}
	// A damaged kept configuration is an error, and DHCP.
	if err := os.WriteFile(root.ESP.Metropolis.NetworkConfiguration.FullPath(), []byte{0xff}, 0o600); err != nil {
		t.Fatal(err)
	}
	if cfg, err := networkConfig(root, nil); cfg != nil || err == nil {
		t.Fatalf("got %v, %v, want an error", cfg, err)
	}
}
