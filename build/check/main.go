// Command check runs every static check `make test` requires before the
// tests: formatting, import grouping, go.mod tidiness, go vet, staticcheck and
// the freshness of generated code. It runs them all, even after a failure, so
// one run shows every problem, and exits non-zero if any failed.
//
// Usage, from the repository root: go run ./build/check
package main

import (
	"fmt"
	"go/parser"
	"go/token"
	"io/fs"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"metropolis.dev/build/importgroups"
)

type step struct {
	name string
	run  func() error
}

func main() {
	log.SetFlags(0)
	log.SetPrefix("check: ")

	steps := []step{
		{"gofmt", checkFormatting},
		{"import groups", checkImportGroups},
		{"go mod tidy", command("go", "mod", "tidy", "-diff")},
		{"go vet", command("go", "vet", "./...")},
		{"staticcheck", command("go", "tool", "staticcheck", "./...")},
		{"generated code", command("go", "run", "./build/protogen", "-check")},
	}
	var failed []string
	for _, s := range steps {
		start := time.Now()
		err := s.run()
		took := time.Since(start).Round(100 * time.Millisecond)
		if err != nil {
			log.Printf("%-15s FAILED (%v): %v", s.name, took, err)
			failed = append(failed, s.name)
			continue
		}
		log.Printf("%-15s ok (%v)", s.name, took)
	}
	if len(failed) > 0 {
		log.Fatalf("%d of %d checks failed: %s", len(failed), len(steps), strings.Join(failed, ", "))
	}
}

// command returns a step that runs a command, showing its output only when
// it fails or prints something (staticcheck and vet print only findings).
func command(name string, args ...string) func() error {
	return func() error {
		out, err := exec.Command(name, args...).CombinedOutput()
		if len(out) > 0 {
			os.Stderr.Write(out)
		}
		if err != nil {
			return fmt.Errorf("%s %s: %w", name, strings.Join(args, " "), err)
		}
		return nil
	}
}

func checkFormatting() error {
	gofmt, err := gofmtPath()
	if err != nil {
		return err
	}
	files, err := goFiles()
	if err != nil {
		return err
	}
	out, err := exec.Command(gofmt, append([]string{"-l"}, files...)...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("running gofmt: %w: %s", err, out)
	}
	if unformatted := strings.Fields(string(out)); len(unformatted) > 0 {
		return fmt.Errorf("not gofmt-formatted (run gofmt -w): %s", strings.Join(unformatted, " "))
	}
	return nil
}

// gofmtPath finds the gofmt of the Go toolchain in use, which may not be on
// PATH when the toolchain was installed by build/ensure-go.sh.
func gofmtPath() (string, error) {
	goroot, err := exec.Command("go", "env", "GOROOT").Output()
	if err != nil {
		return "", fmt.Errorf("asking go for GOROOT: %w", err)
	}
	return filepath.Join(strings.TrimSpace(string(goroot)), "bin", "gofmt"), nil
}

func checkImportGroups() error {
	files, err := goFiles()
	if err != nil {
		return err
	}
	fset := token.NewFileSet()
	var problems []string
	for _, path := range files {
		f, err := parser.ParseFile(fset, path, nil, parser.ParseComments|parser.ImportsOnly)
		if err != nil {
			return fmt.Errorf("parsing %s: %w", path, err)
		}
		for _, p := range importgroups.Check(fset, f) {
			problems = append(problems, p.String())
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("imports not grouped std / third-party / %s:\n  %s", importgroups.ModulePath, strings.Join(problems, "\n  "))
	}
	return nil
}

// goFiles lists the repository's Go files, skipping hidden directories and
// testdata, which the go command ignores too.
func goFiles() ([]string, error) {
	var files []string
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && path != "." && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata") {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.HasSuffix(path, ".go") {
			files = append(files, path)
		}
		return nil
	})
	return files, err
}
