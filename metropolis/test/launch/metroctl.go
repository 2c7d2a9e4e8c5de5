package launch

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// WrapperName is the name of the script MakeMetroctlWrapper writes into
// MetroctlDir.
const WrapperName = "metroctl.sh"

// MetroctlFlags returns the flags that point metroctl at the cluster: its
// configuration directory, the switch's SOCKS proxy, and the address of
// every node known to run a curator (node 0 and those made consensus
// members with MakeConsensusMember).
func (c *Cluster) MetroctlFlags() []string {
	flags := []string{"--config", c.MetroctlDir, "--proxy", c.SOCKSAddr}
	c.mu.Lock()
	members := slices.Sorted(maps.Keys(c.consensus))
	c.mu.Unlock()
	for _, i := range members {
		if a := c.NodeAddress(i); a.IsValid() {
			flags = append(flags, "--endpoints", a.String())
		}
	}
	return flags
}

// MakeMetroctlWrapper writes a shell script into MetroctlDir that runs the
// metroctl at metroctlPath with MetroctlFlags and its own arguments, and
// returns its path.
func (c *Cluster) MakeMetroctlWrapper(metroctlPath string) (string, error) {
	metroctl, err := filepath.Abs(metroctlPath)
	if err != nil {
		return "", err
	}
	path := filepath.Join(c.MetroctlDir, WrapperName)
	if err := os.WriteFile(path, []byte(wrapperScript(metroctl, c.MetroctlFlags())), 0o755); err != nil {
		return "", fmt.Errorf("writing the metroctl wrapper: %w", err)
	}
	return path, nil
}

// wrapperScript returns a POSIX shell script that execs program with args
// followed by the script's own arguments.
func wrapperScript(program string, args []string) string {
	var b strings.Builder
	b.WriteString("#!/bin/sh\n")
	b.WriteString("# Runs metroctl against a test cluster started by metropolis/test/launch.\n")
	b.WriteString("exec ")
	b.WriteString(shellQuote(program))
	for _, a := range args {
		b.WriteString(" ")
		b.WriteString(shellQuote(a))
	}
	b.WriteString(` "$@"` + "\n")
	return b.String()
}

// shellQuote quotes s as one word for a POSIX shell.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
