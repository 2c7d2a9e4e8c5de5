package measure

import (
	"slices"
	"testing"
	"time"
)

func TestMedian(t *testing.T) {
	for _, tc := range []struct {
		values []int
		want   int
	}{
		{[]int{7}, 7},
		{[]int{3, 1, 2}, 2},
		{[]int{4, 1, 3, 2}, 3},
	} {
		in := slices.Clone(tc.values)
		if got := Median(in); got != tc.want {
			t.Errorf("Median(%v) = %d, want %d", tc.values, got, tc.want)
		}
		if !slices.Equal(in, tc.values) {
			t.Errorf("Median reordered its argument to %v", in)
		}
	}
}

func TestRoundAll(t *testing.T) {
	got := RoundAll([]time.Duration{1849 * time.Millisecond, 60*time.Second + 610*time.Millisecond})
	if want := "1.8s, 1m0.6s"; got != want {
		t.Errorf("RoundAll = %q, want %q", got, want)
	}
}

func TestLoadFields(t *testing.T) {
	for in, want := range map[string]string{
		"1.00 1.22 1.50 1/80 7300\n": "1.00 1.22 1.50",
		"":                           "unknown",
		"0.5":                        "unknown",
	} {
		if got := loadFields(in); got != want {
			t.Errorf("loadFields(%q) = %q, want %q", in, got, want)
		}
	}
}
