package launch

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
)

// modulePath is the module the repository holds; RepoRoot looks for its
// go.mod.
const modulePath = "metropolis.dev"

// RepoRoot finds the repository's root, the directory whose go.mod declares
// module metropolis.dev, from the working directory up. Tests run in their
// package's directory and the launch commands from anywhere in the
// repository, so both find it.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if data, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && declaresModule(data, modulePath) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("not inside the Metropolis repository: no go.mod of module %s in the working directory or above", modulePath)
		}
		dir = parent
	}
}

// declaresModule reports whether the go.mod contents gomod declare module
// path.
func declaresModule(gomod []byte, path string) bool {
	for line := range bytes.Lines(gomod) {
		f := strings.Fields(string(line))
		if len(f) == 2 && f[0] == "module" && strings.Trim(f[1], `"`) == path {
			return true
		}
	}
	return false
}

// BuildImage builds the node disk image into out with build/mkimage, without
// node parameters: LaunchCluster hands each node its own through fw_cfg.
// Every line mkimage prints is passed to logf.
func BuildImage(ctx context.Context, out string, logf func(format string, args ...any)) error {
	out, err := filepath.Abs(out)
	if err != nil {
		return err
	}
	return runGo(ctx, logf, "mkimage", "run", "./build/mkimage", "-out", out)
}

// BuildMetroctl builds metroctl into out. Every line the build prints is
// passed to logf.
func BuildMetroctl(ctx context.Context, out string, logf func(format string, args ...any)) error {
	out, err := filepath.Abs(out)
	if err != nil {
		return err
	}
	return runGo(ctx, logf, "go build", "build", "-o", out, "./metropolis/cli/metroctl")
}

// runGo runs the go command with args in the repository's root, passing its
// output to logf line by line, prefixed with name.
func runGo(ctx context.Context, logf func(string, ...any), name string, args ...string) error {
	root, err := RepoRoot()
	if err != nil {
		return err
	}
	gobin, err := exec.LookPath("go")
	if err != nil {
		return fmt.Errorf("the go command is needed to build %s: %w", name, err)
	}
	cmd := exec.CommandContext(ctx, gobin, args...)
	cmd.Dir = root
	pr, pw := io.Pipe()
	cmd.Stdout = pw
	cmd.Stderr = pw
	// The last lines go into the error, since that is where a failed build
	// says why.
	tail := &lineTail{max: 20}
	var wg sync.WaitGroup
	wg.Go(func() {
		s := bufio.NewScanner(pr)
		s.Buffer(nil, 1<<20)
		for s.Scan() {
			line := s.Text()
			tail.add(line)
			switch {
			case logf == nil || strings.TrimSpace(line) == "":
			case strings.HasPrefix(line, name+": "):
				// mkimage names itself already.
				logf("%s", line)
			default:
				logf("%s: %s", name, line)
			}
		}
		// Drain whatever a too long line left, so that the command never
		// blocks on a full pipe.
		io.Copy(io.Discard, pr)
	})
	err = cmd.Run()
	pw.Close()
	wg.Wait()
	if err != nil {
		return fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, strings.Join(tail.lines, "\n"))
	}
	return nil
}

// lineTail keeps the last max lines added to it.
type lineTail struct {
	max   int
	lines []string
}

func (t *lineTail) add(line string) {
	t.lines = append(t.lines, line)
	if len(t.lines) > t.max {
		t.lines = t.lines[1:]
	}
}

// checkHostTools returns an error naming the Debian package of the first
// program missing that the nodes' VMs need.
func checkHostTools() error {
	var errs []error
	for _, tool := range []struct{ program, pkg string }{
		{"qemu-system-x86_64", "qemu-system-x86"},
		{"qemu-img", "qemu-utils"},
		{"swtpm", "swtpm"},
	} {
		if _, err := exec.LookPath(tool.program); err != nil {
			errs = append(errs, fmt.Errorf("%s not found (install the Debian package %s)", tool.program, tool.pkg))
		}
	}
	return errors.Join(errs...)
}

// sortedKeys returns the keys of m in order, for messages.
func sortedKeys[V any](m map[string]V) []string {
	return slices.Sorted(maps.Keys(m))
}
