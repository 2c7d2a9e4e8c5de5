package bringup

import (
	"strings"
	"testing"
)

func TestProgramRoleOnlyUnderInit(t *testing.T) {
	if err := checkStartedByInit(1); err != nil {
		t.Errorf("child of PID 1 refused: %v", err)
	}
	// Started from a shell on a developer's machine.
	err := checkStartedByInit(4242)
	if err == nil || !strings.Contains(err.Error(), "parent is PID 4242") {
		t.Errorf("started from a shell: got %v, want a refusal naming the parent", err)
	}
}
