package logtree

import "fmt"

// Severity of a leveled log entry. Severities are ordered, INFO being the
// least and FATAL the most severe, so that readers can filter by a minimum.
// The zero value is not a valid severity.
type Severity int8

const (
	INFO Severity = iota + 1
	WARNING
	ERROR
	FATAL
)

// String returns the one-letter form of the severity used in log lines.
func (s Severity) String() string {
	switch s {
	case INFO:
		return "I"
	case WARNING:
		return "W"
	case ERROR:
		return "E"
	case FATAL:
		return "F"
	}
	return fmt.Sprintf("Severity(%d)", int8(s))
}

// Valid returns whether s is one of the defined severities.
func (s Severity) Valid() bool {
	return s >= INFO && s <= FATAL
}

// AtLeast returns whether s is as severe as other, or more.
func (s Severity) AtLeast(other Severity) bool {
	return s >= other
}

// VerbosityLevel is the level of verbose logging, as in V(n). Higher levels
// are more verbose. A DN at verbosity level L emits V(n) entries for n <= L.
type VerbosityLevel int32
