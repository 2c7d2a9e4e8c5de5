// Package spec is what the ktest host side and the init it boots agree on:
// the file that tells the init what to do, and the console line by which
// it reports the result.
package spec

import (
	"fmt"
	"regexp"
	"strconv"
)

// Path is where the initramfs holds the Spec, as JSON.
const Path = "/ktest.json"

// TesterPath is where the initramfs holds the test binary.
const TesterPath = "/tester"

// InVMEnv is the environment variable the init sets to "true" for the test
// binary.
const InVMEnv = "IN_KTEST"

// Spec tells the init what to run.
type Spec struct {
	// Modules are loaded, in order and each with its dependencies, before
	// the tests run.
	Modules []string
	// Args are the test binary's arguments.
	Args []string
	// Env are added to the test binary's environment, as KEY=value.
	Env []string
	// Nonce makes the result line one that no test output can fake by
	// accident: the host only accepts a result line carrying it.
	Nonce string
}

// Result lines are "KTEST-RESULT <nonce>: PASS" or "KTEST-RESULT <nonce>:
// FAIL <reason>". The init prints exactly one, last.
const resultPrefix = "KTEST-RESULT "

// PassLine returns the line that reports that the tests passed.
func PassLine(nonce string) string {
	return resultPrefix + nonce + ": PASS"
}

// FailLine returns the line that reports a failure: the test binary's exit
// status, or what went wrong before or instead of running it.
func FailLine(nonce, reason string) string {
	return resultPrefix + nonce + ": FAIL " + reason
}

// ExitReason is the reason a FailLine gives for a test binary that exited
// with a non-zero code.
func ExitReason(code int) string {
	return "exit status " + strconv.Itoa(code)
}

// A Result is a parsed result line.
type Result struct {
	Pass bool
	// Reason tells why the tests failed.
	Reason string
}

// ResultMatcher returns a function that recognizes the result line of the
// run with the given nonce in a console line. The line may start with
// other output, as kernel messages can share a line with it.
func ResultMatcher(nonce string) func(line string) (Result, bool) {
	re := regexp.MustCompile(regexp.QuoteMeta(resultPrefix+nonce+": ") + `(PASS$|FAIL (.*)$)`)
	return func(line string) (Result, bool) {
		m := re.FindStringSubmatch(line)
		if m == nil {
			return Result{}, false
		}
		if m[1] == "PASS" {
			return Result{Pass: true}, true
		}
		return Result{Reason: m[2]}, true
	}
}

// String renders a result for errors.
func (r Result) String() string {
	if r.Pass {
		return "PASS"
	}
	return fmt.Sprintf("FAIL (%s)", r.Reason)
}
