package pid1

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The init role's tests run the test binary three times over: the test
// starts it as a stand-in for PID 1 (helperInit: a child subreaper, which
// inherits orphans as PID 1 does), which starts it again as the program
// (helperProgram or helperWaitForSignal).
const helperEnv = "PID1_TEST_HELPER"

func TestMain(m *testing.M) {
	switch os.Getenv(helperEnv) {
	case "init":
		os.Exit(helperInit(os.Getenv("PID1_TEST_PROGRAM")))
	case "program":
		os.Exit(helperProgram())
	case "wait-for-signal":
		os.Exit(helperWaitForSignal())
	}
	os.Exit(m.Run())
}

// withEnv returns env with key set to value, replacing any earlier value:
// a process sees the first of two.
func withEnv(env []string, key, value string) []string {
	env = slices.DeleteFunc(slices.Clone(env), func(kv string) bool { return strings.HasPrefix(kv, key+"=") })
	return append(env, key+"="+value)
}

// helperInit runs the test binary in the role given as the program under
// superviseChild and reports on standard output what it reaped.
func helperInit(program string) int {
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	env := withEnv(os.Environ(), helperEnv, program)
	status, err := superviseChild(os.Args[0], os.Args[:1], env, notifyInitSignals(), os.Stderr, func(pid int, s unix.WaitStatus) {
		fmt.Printf("reaped=%d:%s\n", pid, describeStatus(s))
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Printf("program=%s\n", describeStatus(status))
	return 0
}

// helperProgram leaves an orphan behind and runs commands through os/exec
// while its parent reaps with wait4(-1). It exits with status 3 once
// every command's status was right and the orphan has been reaped.
func helperProgram() int {
	out, err := exec.Command("sh", "-c", `sh -c 'exit 5' & echo $!`).Output()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	orphan, err := strconv.Atoi(strings.TrimSpace(string(out)))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Printf("orphan=%d\n", orphan)
	for i := range 20 {
		err := exec.Command("sh", "-c", "exit 4").Run()
		if ee := (*exec.ExitError)(nil); !errors.As(err, &ee) || ee.ExitCode() != 4 {
			fmt.Fprintf(os.Stderr, "command %d: got %v, want exit status 4\n", i, err)
			return 1
		}
	}
	// A zombie keeps its /proc entry until it is reaped.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", orphan)); errors.Is(err, os.ErrNotExist) {
			return 3
		}
		if time.Now().After(deadline) {
			fmt.Fprintf(os.Stderr, "orphan %d was not reaped\n", orphan)
			return 1
		}
	}
}

// helperWaitForSignal tells it is ready and exits with status 7 on
// SIGTERM. SIGHUP would kill it, had the init role forwarded it.
func helperWaitForSignal() int {
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, unix.SIGTERM)
	fmt.Println("ready")
	<-signals
	return 7
}

// startInit starts the init stand-in running program, returning its
// standard output line by line.
func startInit(t *testing.T, program string) (*exec.Cmd, *bufio.Scanner) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = withEnv(withEnv(os.Environ(), helperEnv, "init"), "PID1_TEST_PROGRAM", program)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	return cmd, bufio.NewScanner(out)
}

func TestInitReapsOrphansWithoutStealingStatuses(t *testing.T) {
	_, out := startInit(t, "program")
	var orphan, program string
	reaped := map[string]string{}
	for out.Scan() {
		k, v, _ := strings.Cut(out.Text(), "=")
		switch k {
		case "orphan":
			orphan = v
		case "reaped":
			pid, status, _ := strings.Cut(v, ":")
			reaped[pid] = status
		case "program":
			program = v
		}
	}
	if program != "exited with status 3" {
		t.Fatalf("program %q, want exited with status 3 (see its errors above)", program)
	}
	if got := reaped[orphan]; got != "exited with status 5" {
		t.Errorf("orphan %s: reaped as %q, want exited with status 5 (reaped: %v)", orphan, got, reaped)
	}
}

func TestInitForwardsSignals(t *testing.T) {
	cmd, out := startInit(t, "wait-for-signal")
	if !out.Scan() || out.Text() != "ready" {
		t.Fatalf("program did not start: %q, %v", out.Text(), out.Err())
	}
	// SIGHUP is not for the program: it would kill it.
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if !out.Scan() {
		t.Fatalf("init stand-in ended without reporting: %v", out.Err())
	}
	if got, want := out.Text(), "program=exited with status 7"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if err := cmd.Wait(); err != nil {
		t.Errorf("init stand-in: %v", err)
	}
}

func TestDescribeStatus(t *testing.T) {
	for _, tc := range []struct {
		status unix.WaitStatus
		want   string
	}{
		{0x0300, "exited with status 3"},
		{0x0009, "was killed by killed"},
		{0x008b, "was killed by segmentation fault (core dumped)"},
	} {
		if got := describeStatus(tc.status); got != tc.want {
			t.Errorf("%#x: got %q, want %q", uint32(tc.status), got, tc.want)
		}
	}
}
