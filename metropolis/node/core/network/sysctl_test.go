package network

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestApplySysctls(t *testing.T) {
	root := t.TempDir()
	for _, s := range sysctls {
		dir := filepath.Join(root, filepath.Dir(s.path))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := applySysctls(root); err != nil {
		t.Fatal(err)
	}
	for _, want := range []struct{ path, value string }{
		{"net/ipv4/ip_forward", "1"},
		{"net/ipv4/conf/all/rp_filter", "1"},
		{"net/ipv4/conf/all/accept_source_route", "0"},
		{"net/ipv6/conf/all/accept_ra", "0"},
	} {
		got, err := os.ReadFile(filepath.Join(root, want.path))
		if err != nil {
			t.Fatal(err)
		}
		if strings.TrimSpace(string(got)) != want.value {
			t.Errorf("%s is %q, want %s", want.path, got, want.value)
		}
	}

	// A kernel without a parameter is an error naming it.
	if err := applySysctls(t.TempDir()); err == nil || !strings.Contains(err.Error(), "net/ipv4/ip_forward") {
		t.Errorf("applying below an empty root: got %v, want an error naming net/ipv4/ip_forward", err)
	}
}
