// Command prereqs makes sure the Debian packages a make target needs are
// installed, installing the missing ones with apt-get.
//
// Every make target that needs a tool from Debian calls this first, so a fresh
// Debian 12 machine needs no manual set-up step. It is idempotent and fast when
// nothing is missing: it only asks dpkg, and runs apt-get only for packages that
// are not installed yet.
//
// Usage: go run ./build/prereqs PACKAGE...
package main

import (
	"errors"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// aptListsMaxAge is how old apt's package lists may be before an install
// refreshes them first; stale lists make installs fail with 404s.
const aptListsMaxAge = 24 * time.Hour

func main() {
	log.SetFlags(0)
	log.SetPrefix("prereqs: ")
	if len(os.Args) < 2 {
		log.Fatal("usage: prereqs PACKAGE...")
	}
	if err := ensure(os.Args[1:]); err != nil {
		log.Fatal(err)
	}
}

func ensure(packages []string) error {
	var missing []string
	for _, p := range packages {
		ok, err := installed(p)
		if err != nil {
			return err
		}
		if !ok {
			missing = append(missing, p)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	if os.Geteuid() != 0 {
		return fmt.Errorf("missing Debian packages %s: run as root, or install them with apt-get", strings.Join(missing, " "))
	}
	log.Printf("installing %s", strings.Join(missing, " "))
	if listsStale() {
		if err := apt("update", "-qq"); err != nil {
			return fmt.Errorf("refreshing package lists: %w", err)
		}
	}
	args := append([]string{"install", "-y", "-qq", "--no-install-recommends"}, missing...)
	if err := apt(args...); err != nil {
		return fmt.Errorf("installing %s: %w", strings.Join(missing, " "), err)
	}
	return nil
}

// installed tells whether dpkg considers the package fully installed.
func installed(pkg string) (bool, error) {
	out, err := exec.Command("dpkg-query", "-W", "-f=${Status}", pkg).Output()
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) {
		// dpkg-query exits 1 for packages it has never heard of.
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("asking dpkg about %s: %w", pkg, err)
	}
	return strings.HasSuffix(string(out), " installed"), nil
}

// listsStale tells whether apt has no package lists or only old ones, as on a
// freshly provisioned machine.
func listsStale() bool {
	lists, _ := filepath.Glob("/var/lib/apt/lists/*_Packages")
	if len(lists) == 0 {
		return true
	}
	for _, l := range lists {
		st, err := os.Stat(l)
		if err == nil && time.Since(st.ModTime()) < aptListsMaxAge {
			return false
		}
	}
	return true
}

func apt(args ...string) error {
	cmd := exec.Command("apt-get", args...)
	cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	cmd.Stdout = os.Stderr
	cmd.Stderr = os.Stderr
	return cmd.Run()
}
