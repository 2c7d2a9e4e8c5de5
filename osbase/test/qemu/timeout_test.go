package qemu

import (
	"math"
	"testing"
	"time"
)

func TestParseTimeoutScale(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want float64
		ok   bool
	}{
		{"", 1, true},
		{"1", 1, true},
		{"2.5", 2.5, true},
		{"0.5", 0.5, true},
		{"0", 0, false},
		{"-1", 0, false},
		{"NaN", 0, false},
		{"Inf", 0, false},
		{"fast", 0, false},
	} {
		got, err := parseTimeoutScale(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("parseTimeoutScale(%q) = %v, %v; want %v, ok %v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

func TestScaleDuration(t *testing.T) {
	if got := scaleDuration(10*time.Second, 2.5); got != 25*time.Second {
		t.Errorf("10s × 2.5 = %v", got)
	}
	if got := scaleDuration(time.Hour, 1e12); got != math.MaxInt64 {
		t.Errorf("an overflowing timeout became %v, want the longest duration", got)
	}
	if got, want := Timeout(time.Second), scaleDuration(time.Second, TimeoutScale()); got != want {
		t.Errorf("Timeout(1s) = %v, want %v", got, want)
	}
}
