package structfstest

import (
	"os/exec"
	"testing"
)

// RequireTool returns the path of the host tool name, failing the test with
// the Debian package to install if it is missing. Tests do not skip: a
// writer checked against nothing would look tested without being so.
func RequireTool(tb testing.TB, name, debianPackage string) string {
	tb.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		tb.Fatalf("%s is needed to check the image against a real reader: install the Debian package %s (make prereqs-test does): %v", name, debianPackage, err)
	}
	return p
}
