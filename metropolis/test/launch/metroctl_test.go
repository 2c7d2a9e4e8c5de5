package launch

import (
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestWrapperScript(t *testing.T) {
	got := wrapperScript("/opt/bin/metroctl", []string{"--config", "/tmp/it's here", "--proxy", "127.0.0.1:1080"})
	want := "#!/bin/sh\n" +
		"# Runs metroctl against a test cluster started by metropolis/test/launch.\n" +
		`exec '/opt/bin/metroctl' '--config' '/tmp/it'\''s here' '--proxy' '127.0.0.1:1080' "$@"` + "\n"
	if got != want {
		t.Errorf("wrapperScript:\ngot:\n%s\nwant:\n%s", got, want)
	}
}

// TestMetroctlWrapper runs the wrapper a Cluster writes, with a stand-in
// for metroctl that prints its arguments, and checks that they are the
// cluster's flags followed by the wrapper's own arguments, each intact.
func TestMetroctlWrapper(t *testing.T) {
	if _, err := exec.LookPath("sh"); err != nil {
		t.Skip("no sh:", err)
	}
	dir := t.TempDir()
	c := &Cluster{
		MetroctlDir: filepath.Join(dir, "config dir"),
		SOCKSAddr:   "127.0.0.1:40000",
		addresses:   []netip.Addr{netip.MustParseAddr("10.1.0.2"), netip.MustParseAddr("10.1.0.4"), netip.MustParseAddr("10.1.0.3")},
		consensus:   map[int]bool{0: true, 2: true},
	}
	if err := os.Mkdir(c.MetroctlDir, 0o700); err != nil {
		t.Fatal(err)
	}
	wantFlags := []string{"--config", c.MetroctlDir, "--proxy", "127.0.0.1:40000", "--endpoints", "10.1.0.2", "--endpoints", "10.1.0.3"}
	if got := c.MetroctlFlags(); !slices.Equal(got, wantFlags) {
		t.Errorf("MetroctlFlags() = %q, want %q", got, wantFlags)
	}

	fake := filepath.Join(dir, "fake metroctl")
	if err := os.WriteFile(fake, []byte("#!/bin/sh\nfor a in \"$@\"; do printf '%s\\n' \"$a\"; done\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	wrapper, err := c.MakeMetroctlWrapper(fake)
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(c.MetroctlDir, WrapperName); wrapper != want {
		t.Errorf("wrapper at %s, want %s", wrapper, want)
	}
	out, err := exec.Command(wrapper, "node", "describe", "two words", "$HOME").Output()
	if err != nil {
		t.Fatalf("running the wrapper: %v", err)
	}
	got := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
	want := append(wantFlags, "node", "describe", "two words", "$HOME")
	if !slices.Equal(got, want) {
		t.Errorf("metroctl got arguments %q, want %q", got, want)
	}
}
